"""RQ task functions: compress one job's image and record its outcome. The API enqueues them by
their dotted names (`shared.names`) and never imports this module."""

from __future__ import annotations

import logging
import math
import os
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import get_current_job
from rq.timeouts import JobTimeoutException

from filestore import blobs
from screening.imaging import NO_ROOM
from shared import jobs, logs, metrics, names, schedules
from shared.errors import (
    CorruptImage,
    ImgpressError,
    JobExpired,
    JobNotFound,
    StorageFull,
    StorageUnavailable,
    TooLarge,
)
from shared.options import Options
from shared.schema import Job, JobError, JobFailure, JobStatus, OutputInfo, to_timestamp
from shared.settings import Settings
from worker import handoff, lease, memory, pipeline, recovery, webhooks

log = logging.getLogger("imgpress.jobs")

WORKER_LOST = JobError(JobFailure.WORKER_LOST, "The worker processing this image stopped unexpectedly.")


@cache
def settings() -> Settings:
    """The worker's settings, read once per process; logging and the codecs are set up then too."""
    logs.configure()
    pipeline.warm_up()
    return Settings.from_env(os.environ)


def _connection() -> Redis:
    job = get_current_job()
    if job is None:
        raise RuntimeError("imgpress tasks run inside an RQ worker")
    return job.connection


def compress(job_id: str, record: str | None = None) -> dict[str, Any]:
    """Compress one uploaded image and record the outcome on its job.

    `record` is the job's record as queued (jobs queued without it are read first); the RQ
    job's meta names the files that go through Redis besides the bucket (`shared.jobs.Carry`). Two
    transactions: mark it started and take the lease (under ImgpressWorker, together with RQ's
    own start, and staged and sent by another thread while the image is encoded:
    `worker.handoff`); record the end, and give the lease back. The expiry is scheduled with
    RQ's record of the outcome.
    """
    config = settings()
    connection = _connection()
    carried, until = _carried()
    try:
        job = jobs.parse(record) if record else jobs.load(connection, job_id)
    except (JobNotFound, JobExpired):
        return deleted(config, job_id)
    job = job.started()

    def overrun() -> None:
        error = failure_for(JobTimeoutException(), config)
        fail(connection, config, job, error)
        record_end(job, None, error, float(config.job_timeout_seconds))
        os._exit(70)  # the decoder is stuck in C code; the worker pool starts a fresh worker

    shared = handoff.current()
    with lease.holding(connection, job_id, config.job_timeout_seconds, overrun) as claim:
        pipe, first = shared.transaction(connection)  # with the worker's own, under ImgpressWorker

        def stage_start(pipe: Pipeline) -> None:
            jobs.stage_update(pipe, job)
            claim.take(pipe)

        # Staged and sent while the image is encoded; whether the job was deleted meanwhile is
        # read after. Its result is read before anything else touches the claim.
        start = handoff.send_in_background(pipe, stage_start)
        clock = time.perf_counter()
        try:
            given = jobs.take_carried(connection, job_id, "input") if "input" in carried else None
            output, data = compress_capped(config, job_id, job.options, given)
        except Exception as exc:
            seconds = time.perf_counter() - clock
            if not start.result()[first]:
                return deleted(config, job_id)
            error = failure_for(exc, config)
            fail(connection, config, job, error, claim, shared)
            record_end(job, None, error, seconds)
            if error.code == JobFailure.INTERNAL_ERROR:
                log.exception("job %s: unexpected error", job_id)
                raise
            return {"status": "failed", "code": error.code}
        seconds = time.perf_counter() - clock
        if not start.result()[first]:
            return deleted(config, job_id)
        expires = time.time() + config.retention_seconds
        # The output goes back only while its client still waits (found gone, the upload says
        # it stopped waiting before the job started), and for no longer.
        waits = math.ceil(until - time.time())
        back = given is not None and "output" in carried and waits > 0 and len(data) <= names.CARRY_MAX_BYTES
        # The waiting client hears of the end first; the metrics and log line follow.
        ended = job.finished(output, _timestamp(expires))
        end(connection, config, ended, expires, claim, shared, data if back else None, waits)
        record_end(job, output, None, seconds)
    return {"status": "finished", "bytes": output.bytes}


def _carried() -> tuple[str, float]:
    """Which of the current job's files are carried through Redis, and until when its client
    waits (`shared.jobs.Carry.meta`)."""
    job = get_current_job()
    meta = job.meta if job is not None else {}
    return str(meta.get(names.CARRIED_META, "")), float(meta.get(names.CARRIED_UNTIL_META, 0.0))


def deleted(config: Settings, job_id: str) -> dict[str, Any]:
    """The answer for a job deleted while it ran; what the run wrote goes too, and RQ keeps no
    copy of the job (its arguments hold the record) once the run ends."""
    discard_files(config, job_id)
    current = get_current_job()
    if current is not None:
        current.result_ttl = 0
    return {"status": "deleted"}


def discard_files(config: Settings, job_id: str) -> None:
    """Delete a job's files now; with the bucket out of reach they are left to the job's
    expiry, or, once its record is gone, to the sweep's orphan listing."""
    try:
        blobs.store_for(config).delete(job_id)
    except StorageUnavailable:
        log.warning("job %s: the bucket cannot be reached; its files go later", job_id)


def record_end(job: Job, output: OutputInfo | None, error: JobError | None, seconds: float | None) -> None:
    """Count the job's outcome in the metrics and log one line about it (`seconds` is None for a
    job whose worker died: how long it ran is not known)."""
    if seconds is not None:
        metrics.COMPRESS_SECONDS.observe(seconds)
    if output is not None:
        metrics.JOBS.labels("finished", "").inc()
        metrics.SAVED_BYTES.observe(max(job.input.bytes - output.bytes, 0))
    else:
        metrics.JOBS.labels("failed", error.code if error else "").inc()
    log.info(
        "job %s %s",
        job.id,
        "finished" if output else f"failed: {error.code if error else ''}",
        extra={
            "job_id": job.id,
            "outcome": "finished" if output else "failed",
            "code": error.code if error else None,
            "input_type": job.input.media_type,
            "input_bytes": job.input.bytes,
            "output_bytes": output.bytes if output else None,
            "output_format": output.format if output else None,
            "pixels": job.input.width * job.input.height,
            "ms": round(seconds * 1000, 2) if seconds is not None else None,
        },
    )


def compress_capped(
    config: Settings, job_id: str, options: Options, given: bytes | None = None
) -> tuple[OutputInfo, bytes]:
    """Run the pipeline on a job's input within its memory budget (IMGPRESS_WORKER_MEMORY_MB) and
    store its output from memory, where the encoder left it; the output and its bytes.

    The input is `given` (carried through Redis), or read from the store: from a bucket, into
    memory, or to a local temp file when over 1 MiB, gone after.
    """
    store = blobs.store_for(config)
    if given is not None:
        output, data = _capped(config, given, options)
    else:
        with store.local_copy(job_id, "input") as source:
            output, data = _capped(config, source, options)
    try:
        store.save(data, job_id, "output")
    except StorageFull:
        raise StorageFull(NO_ROOM) from None
    return output, data


def _capped(config: Settings, source: Path | bytes, options: Options) -> tuple[OutputInfo, bytes]:
    """`pipeline.encode` of `source` within the job's memory budget.

    Decoders and encoders report a failed allocation as broken data: a `corrupt_image` from an
    image that decodes with twice the budget is `too_large`."""
    limits = pipeline.Limits(max_pixels=config.max_pixels, max_frames=config.max_frames)
    try:
        with memory.capped(config.worker_memory_mb):
            return pipeline.encode(source, options, limits)
    except CorruptImage:
        if config.worker_memory_mb <= 0:
            raise
        with memory.capped(2 * config.worker_memory_mb):
            if not pipeline.decodes(source, limits):
                raise
    raise TooLarge("The image needs more memory to process than this service allows for one image.")


def failure_for(exc: Exception, config: Settings) -> JobError:
    """The error a job reports for an exception raised while compressing it."""
    if isinstance(exc, ImgpressError):
        return JobError(exc.code, exc.message)
    if isinstance(exc, JobTimeoutException):
        return JobError(
            JobFailure.TIMEOUT, f"The image took longer than {config.job_timeout_seconds} seconds to process."
        )
    return JobError(JobFailure.INTERNAL_ERROR, "The image could not be processed.")


def fail(
    connection: Redis,
    config: Settings,
    job: Job,
    error: JobError,
    claim: lease.Claim | None = None,
    shared: handoff.Handoff | None = None,
) -> None:
    """Record a job as failed: its files go now, its record when retention ends."""
    discard_files(config, job.id)
    expires = time.time() + config.retention_seconds
    end(connection, config, job.failed(error, _timestamp(expires)), expires, claim, shared)


def end(
    connection: Redis,
    config: Settings,
    ended: Job,
    expires: float,
    claim: lease.Claim | None = None,
    shared: handoff.Handoff | None = None,
    carried: bytes | None = None,
    carried_seconds: int = names.CARRY_OUTPUT_SECONDS,
) -> None:
    """Record a job's end and give back its lease in one transaction, with the output's bytes
    for the waiting request if `carried` (kept at most `carried_seconds`); then its expiry and
    webhooks.

    The record's expiry (the sweep's safety net) goes with it. rq-scheduler's expiry job follows
    in a transaction of its own, or, given the job's handoff (only from the job's own thread),
    with the worker's record of the job's outcome; lost with the worker, it is left to the
    sweep. A job deleted by its owner meanwhile is not brought back and the files just
    made are removed.
    """
    with connection.pipeline() as pipe:
        jobs.stage_update(pipe, ended, expires)
        if claim is not None:
            claim.give_back(pipe)
        if carried is not None:
            seconds = min(carried_seconds, names.CARRY_OUTPUT_SECONDS)
            pipe.set(names.carried_key(ended.id, "output"), carried, ex=seconds)
        stored = pipe.execute()[0]
    if not stored:
        discard_files(config, ended.id)
        if carried is not None:
            connection.delete(names.carried_key(ended.id, "output"))
        return

    def schedule(pipe: Pipeline) -> None:
        # rq-scheduler writes through whatever client it is given: here, a transaction.
        schedules.schedule_expiry(pipe, ended.id, expires)

    if shared is not None:
        shared.defer(connection, schedule)
    else:
        handoff.send(connection, schedule)
    webhooks.announce_end(connection, config, ended, expires)


def _timestamp(epoch: float) -> str:
    return to_timestamp(datetime.fromtimestamp(epoch, UTC))


def deliver(kind: str, resource_id: str) -> dict[str, object]:
    """POST the webhook of a job or batch that ended (queued on names.WEBHOOK_QUEUE).

    The RQ job's id is the delivery's id: it stays the same if RQ runs the job again.
    """
    job = get_current_job()
    assert job is not None
    return webhooks.deliver(job.connection, settings(), kind, resource_id, job.id)


def expire(job_id: str) -> None:
    """Delete one job's files and record (its retention is over); harmless if run twice."""
    jobs.delete(_connection(), blobs.store_for(settings()), job_id)


def sweep() -> dict[str, int]:
    """Periodic safety net: fail jobs whose worker died, queue again jobs no queue holds, expire
    overdue jobs, delete orphans.

    Runs every IMGPRESS_SWEEP_INTERVAL_SECONDS through rq-scheduler, so a lost or late
    expiry (scheduler down, job never run) never leaks disk for longer than one interval.
    """
    config = settings()
    connection = _connection()
    lost = 0
    for job_id in lease.lost_jobs(connection):
        job = _load(connection, job_id)
        if job is not None and job.status in (JobStatus.QUEUED, JobStatus.STARTED):
            lose(connection, config, job)
            lost += 1
        lease.forget(connection, job_id)
    now = time.time()
    requeued = 0
    for job_id in recovery.unqueued(connection, now):
        job = _load(connection, job_id)
        if job is None or job.status != JobStatus.QUEUED:
            continue
        try:
            queued_again = recovery.requeue(connection, config, job)
        except StorageUnavailable:
            continue  # whether its upload is there is asked again at the next sweep
        if queued_again:
            requeued += 1
        else:
            lose(connection, config, job)
            lost += 1
    expired = orphans = 0
    store = blobs.store_for(config)
    try:
        for job_id in jobs.due_for_expiry(connection, now):
            jobs.delete(connection, store, job_id)  # the record stays if the files cannot go
            expired += 1
        cutoff = now - config.retention_seconds
        # Listed in bounded pages (a bucket's listing) while the orphans found are deleted.
        for job_id in store.stale_jobs(cutoff):
            if not jobs.exists(connection, job_id):
                store.delete(job_id)
                orphans += 1
        orphans += store.clean_partial(cutoff)
    except StorageUnavailable:
        log.warning("the bucket cannot be reached: expiries and orphans wait for the next sweep")
    return {"lost": lost, "requeued": requeued, "expired": expired, "orphans": orphans}


def lose(connection: Redis, config: Settings, job: Job) -> None:
    """Fail a job whose worker died (`worker_lost`), with the log line and count of every job end."""
    fail(connection, config, job, WORKER_LOST)
    record_end(job, None, WORKER_LOST, None)


def _load(connection: Redis, job_id: str) -> Job | None:
    """The job's record, or None if it is gone."""
    try:
        return jobs.load(connection, job_id)
    except (JobNotFound, JobExpired):
        return None
