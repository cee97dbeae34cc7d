"""Queue names, task names and Redis keys: the words the API and worker share.

The API enqueues by these dotted names and never imports `worker`.
"""

from __future__ import annotations

#: Compression jobs.
QUEUE = "imgpress"
#: Cleanup jobs (expiry and the periodic sweep); the worker listens here first so a long
#: compression queue never delays deleting files.
MAINTENANCE_QUEUE = "imgpress-maintenance"

#: Webhook deliveries: their own queue, taken only by webhook workers.
WEBHOOK_QUEUE = "imgpress-webhooks"
#: The queues a compression worker listens on, in the order RQ takes them.
COMPRESSION_QUEUES = (MAINTENANCE_QUEUE, QUEUE)
#: The queues a webhook worker listens on: a slow receiver holds one of these workers (at most
#: shared.callbacks.TIMEOUT_SECONDS), never a compression worker, so it never delays an image.
WEBHOOK_QUEUES = (WEBHOOK_QUEUE,)
#: Every imgpress queue (a burst worker that runs everything, the queue metrics).
WORKER_QUEUES = (*COMPRESSION_QUEUES, *WEBHOOK_QUEUES)

COMPRESS_TASK = "worker.tasks.compress"
DELIVER_TASK = "worker.tasks.deliver"
EXPIRE_TASK = "worker.tasks.expire"
SWEEP_TASK = "worker.tasks.sweep"

#: Fixed id of the periodic sweep in rq-scheduler, so registering it again replaces it.
SWEEP_SCHEDULE_ID = "imgpress-sweep"
#: The RQ id of a job's scheduled expiry is this prefix and the job's id.
EXPIRY_JOB_PREFIX = "expire-"

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

#: With job files in a bucket, a small upload whose client waits for it (`?wait=`) is also
#: carried through Redis to the worker, and its output back, sparing a GET from the bucket each
#: way; the bucket keeps both as for any job. Files up to this size are carried, ...
CARRY_MAX_BYTES = 512 * 1024
#: ... an output for at most this long after its job ends, never past its client's wait (the
#: waiting request takes it at once), ...
CARRY_OUTPUT_SECONDS = 10
#: ... and at most this many waiting uploads of one API process at a time (Redis then holds at
#: most this many times CARRY_MAX_BYTES for each API process).
CARRY_MAX_WAITING = 64
#: The keys of a compression task's RQ meta that name the files it carries (`jobs.Carry.kinds`)
#: and when its client stops waiting (epoch seconds).
CARRIED_META = "carried"
CARRIED_UNTIL_META = "carried_until"


def job_key(job_id: str) -> str:
    """Key of a job's JSON record."""
    return f"imgpress:job:{job_id}"


def gone_key(job_id: str) -> str:
    """Key marking a job as deleted, kept for GONE_SECONDS."""
    return f"imgpress:gone:{job_id}"


def lease_key(job_id: str) -> str:
    """Key that exists while a live worker holds the job."""
    return f"imgpress:lease:{job_id}"


def carried_key(job_id: str, kind: str) -> str:
    """Key of the bytes of a job's input or output carried through Redis (`CARRY_MAX_BYTES`)."""
    return f"imgpress:carried:{job_id}:{kind}"


def rate_key(who: str, window: int) -> str:
    """Key counting one caller's uploads in one rate-limit window."""
    return f"imgpress:rate:{who}:{window}"


def batch_key(batch_id: str) -> str:
    """Key of a batch's JSON record."""
    return f"imgpress:batch:{batch_id}"


def batch_gone_key(batch_id: str) -> str:
    """Key set when a batch is created and kept GONE_SECONDS, so a batch without a record reads as gone."""
    return f"imgpress:batch-gone:{batch_id}"


def delivered_key(kind: str, resource_id: str) -> str:
    """Key claimed by the one webhook delivery of a job or batch."""
    return f"imgpress:delivered:{kind}:{resource_id}"
