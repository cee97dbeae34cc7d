"""A worker's claim on the job it runs, renewed while it lives, and its watchdog past the job
timeout (docs/design.md, "Leases")."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from shared import names
from worker import stopping

log = logging.getLogger(__name__)


#: Seconds past the job timeout before the watchdog gives up on a stuck job.
OVERRUN_GRACE_SECONDS = 15


@dataclass
class Claim:
    """The lease on one job, while a worker runs it."""

    connection: Redis
    job_id: str
    #: time.monotonic() past which the job is stuck.
    deadline: float
    on_overrun: Callable[[], None]
    taken: bool = False

    def take(self, pipe: Pipeline) -> None:
        """Add taking the lease to a transaction (the one that marks the job started)."""
        pipe.set(names.lease_key(self.job_id), "1", ex=names.LEASE_SECONDS)
        pipe.sadd(names.STARTED_KEY, self.job_id)
        self.taken = True

    def give_back(self, pipe: Pipeline) -> None:
        """Add giving the lease back to a transaction (the one that records the job's end)."""
        pipe.delete(names.lease_key(self.job_id))
        pipe.srem(names.STARTED_KEY, self.job_id)
        self.taken = False


class _Renewer:
    """The process's lease thread: renews the claim in hand and watches its deadline."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.lock = threading.Lock()
        self.current: Claim | None = None
        self.thread: threading.Thread | None = None

    def watch(self, claim: Claim | None) -> None:
        with self.lock:
            self.current = claim
            if claim is not None and (self.thread is None or not self.thread.is_alive()):
                self.thread = threading.Thread(target=self.run, name="imgpress-lease", daemon=True)
                with stopping.stop_signals_held():
                    self.thread.start()

    def run(self) -> None:
        while True:
            time.sleep(names.LEASE_SECONDS / 3)
            with self.lock:
                claim = self.current
            if claim is None:
                continue
            if time.monotonic() > claim.deadline:
                log.error("job %s: still running past its timeout; giving up on this worker", claim.job_id)
                claim.on_overrun()
                return
            if claim.taken:
                try:
                    claim.connection.expire(names.lease_key(claim.job_id), names.LEASE_SECONDS)
                except RedisError as exc:
                    log.warning("job %s: could not renew its lease: %s", claim.job_id, exc)


_RENEWER = _Renewer()
# A forked child has no lease thread and must not inherit a lock held by one.
os.register_at_fork(after_in_child=_RENEWER.reset)


@contextmanager
def holding(
    connection: Redis, job_id: str, timeout: float, on_overrun: Callable[[], None]
) -> Iterator[Claim]:
    """Renew the claim on `job_id` while the block runs; call `on_overrun` if it hangs.

    The caller takes the claim (`Claim.take`) and gives it back (`Claim.give_back`) in its own
    transactions; one still taken when the block ends is given back here, unless the worker was
    stopped mid-job (a second Ctrl-C is a SystemExit): that claim lapses and the sweep fails the
    job as `worker_lost`, as for a killed worker.
    """
    claim = Claim(connection, job_id, time.monotonic() + timeout + OVERRUN_GRACE_SECONDS, on_overrun)
    _RENEWER.watch(claim)
    stopped = False
    try:
        yield claim
    except BaseException as exc:
        stopped = not isinstance(exc, Exception)
        raise
    finally:
        _RENEWER.watch(None)
        if claim.taken and not stopped:
            with connection.pipeline() as pipe:
                claim.give_back(pipe)
                pipe.execute()


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
