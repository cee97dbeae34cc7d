"""The worker's record that a job starts, left open for the job's own first transaction to carry.

RQ records that a job starts (its execution, the worker busy, the job started) in a transaction
just before running it, and a compression job's first act is a transaction of its own (its
record marked started, its lease taken). `ImgpressWorker` leaves its transaction here, unsent,
for the compression task, which adds its commands and sends both in one round trip: one fewer
between the upload and the encode. A transaction the job does not take is sent when the job
ends, before RQ records the outcome. Under a stock worker nothing is held and the task sends
its own. One job runs at a time per worker process, on its main thread.
"""

from __future__ import annotations

from redis import Redis
from redis.client import Pipeline

_held: Pipeline | None = None


def hold(pipeline: Pipeline) -> None:
    """Leave the worker's unsent transaction for the running job's first one (worker side)."""
    global _held
    _held = pipeline


def release() -> None:
    """Send a held transaction that the job did not take (worker side, as the job ends)."""
    global _held
    pipeline, _held = _held, None
    if pipeline is not None:
        with pipeline:
            pipeline.execute()


def transaction(connection: Redis) -> tuple[Pipeline, int]:
    """A transaction for the running job's writes, and the index of the first reply that is theirs.

    The held one, with the worker's commands already in, if there is one; else a new one.
    """
    global _held
    pipeline, _held = _held, None
    if pipeline is None:
        return connection.pipeline(), 0
    return pipeline, len(pipeline.command_stack)
