"""A worker's claim on the job it is running, renewed while it lives, and its watchdog.

If the work-horse or the whole worker is killed (kill -9, the kernel's OOM killer, a crash in a
decoder), nothing renews the claim; the periodic sweep then sees a started job with no lease
and fails it with `worker_lost`. Such jobs are failed rather than retried: a file that killed
one worker is likely to kill the next.

Workers run jobs in-process (SimpleWorker), so RQ's timeout is a SIGALRM that cannot stop a
decoder stuck in C code. The same thread is the watchdog: past the job timeout plus a grace
period it calls `on_overrun` (which records the failure and ends the process; `rq
worker-pool` starts a fresh worker).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import RedisError

from shared import names

log = logging.getLogger(__name__)


#: Seconds past the job timeout before the watchdog gives up on a stuck job.
OVERRUN_GRACE_SECONDS = 15


@contextmanager
def holding(connection: Redis, job_id: str, timeout: float, on_overrun: Callable[[], None]) -> Iterator[None]:
    """Hold the lease on `job_id` for the duration of the block; call `on_overrun` if it hangs."""
    with connection.pipeline() as pipe:
        pipe.set(names.lease_key(job_id), "1", ex=names.LEASE_SECONDS)
        pipe.sadd(names.STARTED_KEY, job_id)
        pipe.execute()
    stop = threading.Event()
    deadline = time.monotonic() + timeout + OVERRUN_GRACE_SECONDS
    renewer = threading.Thread(
        target=_renew, args=(connection, job_id, stop, deadline, on_overrun), daemon=True
    )
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        with connection.pipeline() as pipe:
            pipe.delete(names.lease_key(job_id))
            pipe.srem(names.STARTED_KEY, job_id)
            pipe.execute()


def _renew(
    connection: Redis, job_id: str, stop: threading.Event, deadline: float, on_overrun: Callable[[], None]
) -> None:
    while not stop.wait(names.LEASE_SECONDS / 3):
        if time.monotonic() > deadline:
            log.error("job %s: still running past its timeout; giving up on this worker", job_id)
            on_overrun()
            return
        try:
            connection.expire(names.lease_key(job_id), names.LEASE_SECONDS)
        except RedisError as exc:
            log.warning("job %s: could not renew its lease: %s", job_id, exc)


def lost_jobs(connection: Redis) -> list[str]:
    """Ids of started jobs whose worker no longer renews its lease."""
    lost = []
    for raw in connection.smembers(names.STARTED_KEY):
        job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not connection.exists(names.lease_key(job_id)):
            lost.append(job_id)
    return lost


def forget(connection: Redis, job_id: str) -> None:
    """Stop tracking a job as started (after it was dealt with as lost)."""
    connection.srem(names.STARTED_KEY, job_id)
