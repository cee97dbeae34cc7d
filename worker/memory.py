"""The memory cap of the process that decodes images (IMGPRESS_WORKER_MEMORY_MB).

RLIMIT_AS bounds the address space, so a hostile file that makes a decoder allocate too much
gets a MemoryError (reported as `too_large`) instead of eating the machine. With the stock
forking `rq worker`, each job runs in a fresh work-horse and the cap applies to it alone.
"""

from __future__ import annotations

import resource

MIB = 1024 * 1024


def cap_address_space(megabytes: int) -> None:
    """Lower this process's soft RLIMIT_AS to `megabytes` MiB (0 leaves it alone)."""
    if megabytes <= 0:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = megabytes * MIB
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
