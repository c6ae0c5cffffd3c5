"""Process-wide memory settings of the adapter daemon (never applied on import: tests and notebooks
that import the adapter keep their own).

Measured with ``benchmarks/bench_edge.py`` (a recorded proton-driver INSERT of 65,536-row gNMI blocks,
LZ4, replayed at full speed; RSS idle / peak / at rest after the load):

* pandas is refused. pyarrow imports it on its first array conversion only to ask whether the
  input is a pandas object: 33 MB the adapter never uses.
* Arrow allocates from the system allocator (glibc) instead of its bundled mimalloc, which kept
  freed segments mapped (``ARROW_DEFAULT_MEMORY_POOL`` set in the environment still wins).
* :func:`release_memory` (glibc ``malloc_trim``) after each INSERT, and after a block at most once a
  second: glibc's mmap threshold grows to the largest buffer freed so far, after which ~1 MB chunks,
  decompressed frames and their copies land in the heap, which glibc otherwise keeps. At rest after
  a load RSS fell from ~130 to ~85 MB; with the system pool, replay throughput is ~10 % lower overall.
  A fixed 256 KB mmap threshold (``mallopt``) instead lowered the peak a little more but cost ~35 %
  of throughput (an mmap/munmap and fresh page faults per chunk), so it is not used.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import time

from streams.lean import refuse_pandas


def _load_libc() -> ctypes.CDLL | None:
    with contextlib.suppress(OSError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # glibc only
    return None


_libc: ctypes.CDLL | None = None
_last_release = 0.0


def edge_process() -> None:
    """Apply the settings above to this process (call before the first Arrow allocation)."""
    global _libc
    refuse_pandas()
    _libc = _load_libc()
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())


def release_memory(min_interval: float = 0.0) -> None:
    """Give freed heap pages back to the kernel, unless that was done less than ``min_interval`` s ago.

    A no-op until :func:`edge_process` ran (and without glibc).
    """
    global _last_release
    now = time.monotonic()
    if _libc is None or now - _last_release < min_interval:
        return
    _last_release = now
    _libc.malloc_trim(0)
