"""The private parts of RQ that `ImgpressWorker` uses, in one place, for the RQ version they were
read from: importing this module under another RQ version fails and says what to check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import rq
from rq.executions import Execution
from rq.job import Job, JobStatus

if TYPE_CHECKING:
    from redis.client import Pipeline
    from rq.worker import BaseWorker

#: The RQ release (major, minor) whose private names this module was checked against.
WRITTEN_FOR = (3, 0)


def check_version(version: str) -> None:
    """Refuse an RQ whose major or minor version differs from the one these names were read from."""
    found = tuple(int(part) for part in version.split(".")[:2])
    if found != WRITTEN_FOR:
        raise ImportError(
            f"worker/rqprivate.py was written for RQ {WRITTEN_FOR[0]}.{WRITTEN_FOR[1]} and RQ {version}"
            " is installed: check that what it uses of RQ's private code still means the same"
            " (and the methods worker/rqworker.py overrides), then update WRITTEN_FOR."
        )


check_version(rq.__version__)


def stage_success(
    job: Job, pipeline: Pipeline, result_ttl: int, worker_name: str, execution: Execution
) -> None:
    """Add RQ's record of a job's success (its result and the finished registry) to a transaction."""
    job._handle_success(
        result_ttl,
        pipeline=pipeline,
        worker_name=worker_name,
        execution_id=execution.id,
        execution_started_at=execution.created_at,
        execution_ended_at=job.ended_at,
    )


def mark_finished(job: Job) -> None:
    """Set the in-memory status RQ reads after a success (the transaction writes it to Redis)."""
    job._status = JobStatus.FINISHED


def pubsub_exception_handler(worker: BaseWorker) -> Any:
    """RQ's handler for errors in a worker's command-channel listener."""
    return worker._pubsub_exception_handler


def stop_after_job(worker: BaseWorker) -> None:
    """Have RQ's work loop stop after the job in hand (what its warm shutdown does when busy)."""
    worker._stop_requested = True
