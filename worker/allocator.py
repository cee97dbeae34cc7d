"""How a worker's C allocator keeps freed memory: for the next image, instead of giving it back.

glibc's malloc serves an allocation above an adaptive threshold with a mapping of its own and
returns the top of the heap to the kernel as soon as enough of it is free. An image's decode
and encode buffers (a few MiB for a 0.39 MP photo) were therefore mapped, page-faulted in and
unmapped again for every job: about 1,000 page faults and 1.5-2 ms of a worker's CPU per small
photo (measured from /proc; see docs/benchmarks.md). With the thresholds below the worker keeps
up to KEEP_FREE_BYTES of freed heap for the next job; only allocations above
MMAP_THRESHOLD_BYTES (a 12 MP image's full frames) still get, and give back, their own
mappings. Peak memory is unchanged; what a worker holds between jobs is its recent peak.
"""

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
