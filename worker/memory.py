"""The memory cap of the process that decodes images (IMGPRESS_WORKER_MEMORY_MB).

RLIMIT_AS bounds the address space, so a hostile file that makes a decoder allocate too much
gets a MemoryError (reported as `too_large`) instead of eating the machine. Workers run jobs
in-process, so the cap is lowered only around the pipeline and lifted again afterwards: the
worker's bookkeeping never runs into it (the job's start transaction, in flight as the pipeline
begins, allocates a few KiB against a cap of hundreds of MiB).
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager

MIB = 1024 * 1024


def address_space_mib() -> int:
    """This process's current virtual memory size, in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * resource.getpagesize() // MIB


@contextmanager
def capped(megabytes: int) -> Iterator[None]:
    """Lower the soft RLIMIT_AS to `megabytes` MiB for the block (0 means no cap)."""
    if megabytes <= 0:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = megabytes * MIB if hard == resource.RLIM_INFINITY else min(megabytes * MIB, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
