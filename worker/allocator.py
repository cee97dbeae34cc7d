"""How a worker's C allocator keeps freed memory for the next image instead of giving it back
(docs/design.md, "The allocator")."""

from __future__ import annotations

import ctypes
import ctypes.util

MIB = 1024 * 1024
#: Allocations above this get their own mapping (glibc's adaptive threshold stops here too).
MMAP_THRESHOLD_BYTES = 32 * MIB
#: Free memory at the top of the heap kept for reuse before any is returned to the kernel.
KEEP_FREE_BYTES = 64 * MIB

# mallopt() parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Set this process's allocator thresholds (forked children inherit them); False without glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mmap_set = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    trim_set = mallopt(_M_TRIM_THRESHOLD, KEEP_FREE_BYTES)
    return bool(mmap_set and trim_set)
