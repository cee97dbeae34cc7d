"""Acknowledged jobs that no queue holds any more (a worker died between taking one off a queue
and marking it started), found by the sweep and queued again."""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue

from filestore import blobs
from shared import jobs, names
from shared.schema import Job, JobStatus
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Jobs seen queued in no queue at one sweep, with when: they are dealt with at the next one
#: (a worker that has just taken a job marks it started within milliseconds).
SUSPECTS_KEY = "imgpress:unqueued"
#: How many job records are read in one round trip.
PAGE = 500


def unqueued(connection: Redis, now: float) -> list[str]:
    """Ids of jobs whose record says `queued` and that no RQ queue holds, now and at the last sweep."""
    waiting = {_text(raw) for raw in connection.lrange(Queue(names.QUEUE, connection=connection).key, 0, -1)}
    candidates = []
    live = connection.zrangebyscore(names.EXPIRY_KEY, now, "+inf")
    for start in range(0, len(live), PAGE):
        ids = [_text(raw) for raw in live[start : start + PAGE]]
        records = connection.mget([names.job_key(job_id) for job_id in ids])
        for job_id, raw in zip(ids, records, strict=True):
            if raw is not None and job_id not in waiting and jobs.parse(raw).status == JobStatus.QUEUED:
                candidates.append(job_id)
    seen_before = {_text(key) for key in connection.hkeys(SUSPECTS_KEY)}
    with connection.pipeline() as pipe:
        pipe.delete(SUSPECTS_KEY)
        if candidates:
            pipe.hset(SUSPECTS_KEY, mapping={job_id: now for job_id in candidates})
        pipe.execute()
    return [job_id for job_id in candidates if job_id in seen_before]


def requeue(connection: Redis, settings: Settings, job: Job) -> bool:
    """Queue a lost job again; False (nothing done) if its upload is gone too."""
    if not blobs.store_for(settings).exists(job.id, "input"):
        return False
    with connection.pipeline() as pipe:
        pipe.multi()
        jobs.enqueue(connection, pipe, settings, job)
        pipe.hdel(SUSPECTS_KEY, job.id)
        pipe.execute()
    log.warning("job %s was in no queue (a worker died holding it); queued it again", job.id)
    return True


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
