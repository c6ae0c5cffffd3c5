"""Arrow string arrays built from byte ranges without a per-byte index, via the string-view layout.

An Arrow string view is 16 bytes: the value's length, then the value itself inline when it is at
most 12 bytes, or else its first 4 bytes and its (buffer, offset) location. Views can be computed
with a few vectorised gathers — the inline bytes are two unaligned word loads at the value's start —
and one C++ cast then turns them into an ordinary string array, copying each value with memcpy.
pyarrow has no "slice these ranges out of a buffer" kernel, and a per-byte NumPy index costs several
times more, hence these helpers.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

INLINE = 12  # bytes a view holds inline
READ_AHEAD = 12  # bytes the gathers read from a value's start: buffers need this much after a start


def views(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """(n, 4) int32 string views of ``buf[starts[i] : starts[i] + lens[i]]`` (data buffer index 0).

    ``buf`` is a uint8 array below 2 GiB with ``READ_AHEAD`` readable bytes after every start; bytes
    after a short value are whatever follows it in ``buf`` (only the length counts when read).
    """
    out = np.empty((len(starts), 4), np.int32)
    out[:, 0] = lens
    out[:, 1] = np.ndarray((len(buf) - 3,), "<i4", buffer=buf, strides=(1,))[starts]  # unaligned loads
    tail = out.view(np.int64)[:, 1]
    tail[:] = np.ndarray((len(buf) - 7,), "<i8", buffer=buf, strides=(1,))[starts + 4]
    long_ = lens > INLINE
    if long_.any():
        tail[long_] = starts[long_].astype(np.int64) << 32  # buffer 0 (low half), offset (high half)
    return out


def from_views(view_rows: np.ndarray, data: pa.Buffer | np.ndarray, validity: pa.Buffer | None = None,
               nulls: int = 0) -> pa.StringArray:  # fmt: skip
    """A plain string array from (n, 4) int32 views whose long values live in ``data``."""
    n = len(view_rows)
    buffers = [validity, pa.py_buffer(view_rows), data if isinstance(data, pa.Buffer) else pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string_view(), n, buffers, nulls).cast(pa.string())
