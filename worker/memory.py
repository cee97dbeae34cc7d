"""The memory budget of one job (IMGPRESS_WORKER_MEMORY_MB): address space it may add to what
its worker already holds, enforced with RLIMIT_AS around the pipeline and lifted afterwards.
A hostile file that makes a decoder allocate too much fails instead of eating the machine.
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
    """Let the block add at most `megabytes` MiB to the process's address space (0: no cap).

    The cap is measured from what the process holds when the block starts: a worker's own
    size (its libraries, the allocator's kept buffers) grows over its life and must not eat
    into what a job may use.
    """
    if megabytes <= 0:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = (address_space_mib() + megabytes) * MIB
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
