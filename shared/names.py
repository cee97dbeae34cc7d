"""Queue names, task names and Redis keys: the words the API and worker share.

The API enqueues by these dotted names and never imports `worker`.
"""

from __future__ import annotations

#: Compression jobs.
QUEUE = "imgpress"
#: Cleanup jobs (expiry and the periodic sweep); the worker listens here first so a long
#: compression queue never delays deleting files.
MAINTENANCE_QUEUE = "imgpress-maintenance"

COMPRESS_TASK = "worker.tasks.compress"
EXPIRE_TASK = "worker.tasks.expire"
SWEEP_TASK = "worker.tasks.sweep"

#: Fixed id of the periodic sweep in rq-scheduler, so registering it again replaces it.
SWEEP_SCHEDULE_ID = "imgpress-sweep"

#: Pub/sub channel on which every job status change is announced as {"id", "status"}.
EVENTS_CHANNEL = "imgpress:events"

#: Key of the sorted set of job ids scored by the time (epoch seconds) they expire.
EXPIRY_KEY = "imgpress:expiry"

#: Key of the set of ids of jobs a worker has started and not yet ended.
STARTED_KEY = "imgpress:started"

#: Seconds a worker's claim on a job lasts unless renewed; a worker that dies stops renewing.
LEASE_SECONDS = 10

#: How long the API remembers a deleted job, to answer 410 instead of 404.
GONE_SECONDS = 7 * 24 * 3600


def job_key(job_id: str) -> str:
    """Key of a job's JSON record."""
    return f"imgpress:job:{job_id}"


def gone_key(job_id: str) -> str:
    """Key marking a job as deleted, kept for GONE_SECONDS."""
    return f"imgpress:gone:{job_id}"


def lease_key(job_id: str) -> str:
    """Key that exists while a live worker holds the job."""
    return f"imgpress:lease:{job_id}"


def rate_key(who: str, window: int) -> str:
    """Key counting one caller's uploads in one rate-limit window."""
    return f"imgpress:rate:{who}:{window}"
