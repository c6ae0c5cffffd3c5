"""Keep pandas out of a daemon's process.

pyarrow imports pandas (~33-40 MB of anonymous memory) on its first conversion of a Python sequence, only to
ask whether the input is a pandas object. No daemon (adapter, collectors, the engine behind them) uses
pandas, so they refuse it before the first Arrow call; pyarrow then treats pandas as absent. Never applied
on import: notebooks and tests that import the package keep pandas.
"""

from __future__ import annotations

import sys


class _RefusePandas:
    """A meta path finder that makes ``import pandas`` fail."""

    @staticmethod
    def find_spec(name: str, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is not used by this daemon", name=name)
        return None


def refuse_pandas() -> None:
    """Make ``import pandas`` fail in this process (a no-op when pandas is already loaded)."""
    if "pandas" not in sys.modules and _RefusePandas not in sys.meta_path:
        sys.meta_path.insert(0, _RefusePandas)
