"""Delayed cleanup through rq-scheduler: one expiry per job and the periodic sweep."""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis
from rq_scheduler import Scheduler

from shared import names
from shared.settings import Settings


def _scheduler(connection: Redis) -> Scheduler:
    return Scheduler(queue_name=names.MAINTENANCE_QUEUE, connection=connection)


def schedule_expiry(connection: Redis, job_id: str, at_epoch: float) -> None:
    """Have rq-scheduler delete this job's files and record at `at_epoch`."""
    _scheduler(connection).enqueue_at(
        datetime.fromtimestamp(at_epoch, UTC),
        names.EXPIRE_TASK,
        job_id,
        job_id=f"expire-{job_id}",
        job_result_ttl=0,
        job_description=f"expire {job_id}",
    )


def register_sweep(connection: Redis, settings: Settings) -> None:
    """Schedule the periodic sweep; idempotent, as the schedule has a fixed id."""
    _scheduler(connection).schedule(
        scheduled_time=datetime.now(UTC),
        func=names.SWEEP_TASK,
        interval=settings.sweep_interval_seconds,
        repeat=None,
        id=names.SWEEP_SCHEDULE_ID,
        result_ttl=settings.sweep_interval_seconds * 2,
        description="imgpress periodic sweep",
    )
