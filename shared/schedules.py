"""Delayed cleanup through rq-scheduler: one expiry per job and the periodic sweep."""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis
from rq.job import Job
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
        job_id=f"{names.EXPIRY_JOB_PREFIX}{job_id}",
        job_result_ttl=0,
        job_description=f"expire {job_id}",
    )


def register_sweep(connection: Redis, settings: Settings) -> None:
    """Schedule the periodic sweep; idempotent, as the schedule has a fixed id.

    Its record never expires: rq-scheduler drops from the schedule a job whose record is gone.
    """
    _scheduler(connection).schedule(
        scheduled_time=datetime.now(UTC),
        func=names.SWEEP_TASK,
        interval=settings.sweep_interval_seconds,
        repeat=None,
        id=names.SWEEP_SCHEDULE_ID,
        result_ttl=-1,
        description="imgpress periodic sweep",
    )


def ensure_sweep(connection: Redis, settings: Settings) -> bool:
    """Register the periodic sweep if it is not scheduled or its record is gone; True if it was."""
    scheduler = _scheduler(connection)
    if names.SWEEP_SCHEDULE_ID in scheduler and connection.exists(Job.key_for(names.SWEEP_SCHEDULE_ID)):
        return False
    register_sweep(connection, settings)
    return True
