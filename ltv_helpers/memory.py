"""Giving freed memory back to the system after large steps.

pandas, NumPy and DuckDB results free their arrays, but the allocators keep the freed pages for
reuse: Arrow's memory pool (mimalloc) and the C library's heap, one arena per thread that ever
allocated (the fits and draws run in threads). A notebook of a 1M-customer report left 1,555 MB
resident of which 720 MB was free memory held that way (Arrow's pool 350 MB, the C heap 370 MB),
and the next notebook's peak stood on top of it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _libc():
    """The C library, when it has glibc's ``malloc_trim`` (Linux); None elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_memory() -> None:
    """Hand the memory that is free but kept by the allocators back to the system: Arrow's pool
    (``release_unused``) and the C heap (glibc's ``malloc_trim``, where there is one). Nothing in
    use is touched; it takes well under a millisecond when there is little to give back."""
    import sys

    if "pyarrow" in sys.modules:  # only when something has used Arrow (it is not imported for this)
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
