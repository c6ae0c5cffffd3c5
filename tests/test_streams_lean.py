"""Daemons refuse pandas: pyarrow keeps working and never loads it (it costs ~33 MB on the edge)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import sys
from streams.lean import refuse_pandas
refuse_pandas()
import pyarrow as pa
assert pa.array(["a", "b"]).to_pylist() == ["a", "b"]
assert pa.table({"x": [1, 2]}).num_rows == 2
try:
    import pandas
except ModuleNotFoundError as e:
    print("refused:", e)
print("pandas loaded:", "pandas" in sys.modules)
"""


def test_refused_pandas_is_never_loaded_and_arrow_still_converts() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["refused: pandas is not used by this daemon", "pandas loaded: False"]


def test_without_the_refusal_pyarrow_loads_pandas() -> None:
    """The control: the refusal is what keeps pandas out (pandas is installed in the test environment)."""
    child = CHILD.replace("refuse_pandas()\n", "", 1)
    child = child.replace("try:\n    import pandas\nexcept", "try:\n    pass\nexcept")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["pandas loaded: True"]
