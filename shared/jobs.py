"""The job records in Redis (create, read, update with `SET ... XX`, delete), each change
published on `names.EVENTS_CHANNEL` so waiting clients wake without polling; and the upload
and output bytes a waited-for job carries through Redis."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.client import Pipeline
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob

from shared import names, storage
from shared.errors import JobExpired, JobNotFound
from shared.schema import Job
from shared.settings import Settings

#: Why a job deleted with DELETE /v1/jobs/{id} (or its batch's) has no record.
DELETED = "This job was deleted."


@dataclass(frozen=True)
class Carry:
    """What a job whose client waits carries through Redis (`names.CARRY_MAX_BYTES`): its
    upload's bytes, kept there as long as the client waits, and whether its output comes back
    the same way."""

    input: bytes
    seconds: float
    output: bool

    def meta(self) -> dict[str, object]:
        """The compression task's RQ meta: which of the job's files are carried, and until when
        (`names.CARRIED_META`, `names.CARRIED_UNTIL_META`)."""
        kinds = "input,output" if self.output else "input"
        return {names.CARRIED_META: kinds, names.CARRIED_UNTIL_META: time.time() + self.seconds}


def submit(connection: Redis, settings: Settings, job: Job, carry: Carry | None = None) -> None:
    """Store a new job's record and enqueue it for compression (with its upload's bytes, if
    carried).

    Until it finishes, the job is due to expire one retention period plus one job timeout
    after upload, so a job that never runs is still cleaned up by the sweep.
    """
    provisional_expiry = time.time() + settings.retention_seconds + settings.job_timeout_seconds
    record = json.dumps(job.to_dict())
    # One transaction, one round trip: the record is never without its queue entry or expiry.
    with connection.pipeline() as pipe:
        pipe.multi()  # RQ adds its commands to a transaction it finds started
        pipe.set(names.job_key(job.id), record)
        pipe.zadd(names.EXPIRY_KEY, {job.id: provisional_expiry})
        if carry is not None:
            pipe.set(names.carried_key(job.id, "input"), carry.input, ex=max(1, math.ceil(carry.seconds)))
        enqueue(connection, pipe, settings, job, record, carry.meta() if carry else None)
        pipe.execute()


def enqueue(
    connection: Redis,
    pipe: Pipeline,
    settings: Settings,
    job: Job,
    record: str | None = None,
    meta: dict[str, object] | None = None,
) -> None:
    """Add queueing the job's compression to a transaction (a new job, or one queued again);
    `meta` says what it carries through Redis (`Carry.meta`)."""
    # The record goes with the task too, sparing the worker a read before it starts: only
    # workers change a record once queued (the API deletes; `SET ... XX` then sees it gone).
    Queue(names.QUEUE, connection=connection).enqueue(
        names.COMPRESS_TASK,
        job.id,
        record or json.dumps(job.to_dict()),
        # In the meta, not the arguments: a worker of an earlier release ignores it.
        meta=meta,
        job_id=job.id,
        job_timeout=settings.job_timeout_seconds,
        result_ttl=settings.retention_seconds,
        failure_ttl=settings.retention_seconds,
        description=f"compress {job.input.media_type} ({job.input.bytes} bytes)",
        pipeline=pipe,
    )


def take_carried(connection: Redis, job_id: str, kind: str) -> bytes | None:
    """A job's file carried through Redis (`Carry`), deleted as it is read; None if not there."""
    data = connection.getdel(names.carried_key(job_id, kind))
    return data if isinstance(data, bytes) else None


async def take_carried_async(connection: AsyncRedis, job_id: str, kind: str) -> bytes | None:
    """take_carried() for the API's event loop."""
    data = await connection.getdel(names.carried_key(job_id, kind))
    return data if isinstance(data, bytes) else None


async def queued_count(connection: AsyncRedis) -> int:
    """How many compression jobs wait in the queue (the length of RQ's list, as Queue.count reads it)."""
    return int(await connection.llen(Queue.redis_queue_namespace_prefix + names.QUEUE))


def load(connection: Redis, job_id: str) -> Job:
    """The job with this id; raises JobExpired if it was deleted, JobNotFound if it never was."""
    if not storage.is_job_id(job_id):
        raise JobNotFound()
    with connection.pipeline(transaction=False) as pipe:
        pipe.get(names.job_key(job_id))
        pipe.get(names.gone_key(job_id))
        raw, gone = pipe.execute()
    return from_lookup(raw, gone)


async def load_async(connection: AsyncRedis, job_id: str) -> Job:
    """load() for the API's event loop: one round trip, no thread."""
    if not storage.is_job_id(job_id):
        raise JobNotFound()
    async with connection.pipeline(transaction=False) as pipe:
        pipe.get(names.job_key(job_id))
        pipe.get(names.gone_key(job_id))
        raw, gone = await pipe.execute()
    return from_lookup(raw, gone)


def load_many(connection: Redis, job_ids: list[str]) -> list[Job | None]:
    """The jobs with these ids, in order, in one round trip; None for an id no job has."""
    valid = [job_id for job_id in job_ids if storage.is_job_id(job_id)]
    records = connection.mget([names.job_key(job_id) for job_id in valid]) if valid else []
    found = dict(zip(valid, records, strict=True))
    return [None if (raw := found.get(job_id)) is None else parse(raw) for job_id in job_ids]


def from_lookup(raw: bytes | str | None, gone: bytes | None) -> Job:
    """The job from its stored record, or the error saying why there is none (`gone`: the
    marker `delete` left, if any)."""
    if raw is None:
        if gone is None:
            raise JobNotFound()
        raise JobExpired(DELETED) if gone == b"deleted" else JobExpired()
    return parse(raw)


def parse(raw: bytes | str) -> Job:
    """Decode a stored record."""
    return Job.from_dict(json.loads(raw))


def stage_update(pipe: Pipeline, job: Job, expires_at_epoch: float | None = None) -> None:
    """Add saving a changed job and announcing it to a transaction.

    Staged first, the transaction's first result is false if the job was deleted meanwhile.
    """
    record = json.dumps(job.to_dict())
    pipe.set(names.job_key(job.id), record, xx=True)
    if expires_at_epoch is not None:
        pipe.zadd(names.EXPIRY_KEY, {job.id: expires_at_epoch}, xx=True)
    pipe.publish(names.EVENTS_CHANNEL, record)


def delete(connection: Redis, store: storage.JobFiles, job_id: str, *, asked: bool = False) -> None:
    """Delete a job's files and record now, leaving a marker so it reads as gone (410): deleted
    by its owner if `asked`, else expired.

    Harmless if run twice. RQ's copy of the job (its arguments hold the record: file name,
    options, callback URL) is deleted too, and taken out of its queue if it still waits.
    """
    store.delete(job_id)
    with connection.pipeline() as pipe:
        pipe.delete(names.job_key(job_id), *(names.carried_key(job_id, kind) for kind in ("input", "output")))
        pipe.zrem(names.EXPIRY_KEY, job_id)
        pipe.set(names.gone_key(job_id), "deleted" if asked else "expired", ex=names.GONE_SECONDS)
        pipe.publish(names.EVENTS_CHANNEL, json.dumps({"id": job_id, "status": "deleted"}))
        pipe.execute()
    try:
        RQJob.fetch(job_id, connection=connection).delete(remove_from_queue=True)
    except NoSuchJobError:
        pass


def due_for_expiry(connection: Redis, now: float, limit: int = 1000) -> list[str]:
    """Ids of jobs whose retention has run out by `now`, oldest first."""
    ids = connection.zrangebyscore(names.EXPIRY_KEY, "-inf", now, start=0, num=limit)
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


def exists(connection: Redis, job_id: str) -> bool:
    """True if the job's record is still stored."""
    return bool(connection.exists(names.job_key(job_id)))
