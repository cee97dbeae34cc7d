"""Turning a received upload into a queued job: check its type and size, store it, enqueue it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from api.ratelimit import check_rate
from api.uploads import Upload
from filestore import blobs
from filestore.blobs import Blobs
from screening import imaging
from shared import batches, jobs, metrics, names, storage
from shared.batches import Batch, Rejected
from shared.errors import BadOption, CorruptImage, JobExpired, QueueFull, TooLarge, UnsupportedMedia
from shared.options import Options
from shared.schema import InputInfo, Job, JobError, JobStatus, utc_now
from shared.settings import Settings

#: How long a read of the queue's length may stand in for the next ones (see QueueDepth).
DEPTH_REUSE_SECONDS = 0.5


class QueueDepth:
    """The compression queue's length as one API process knows it, read only when it matters.

    A read (one round trip) is reused for DEPTH_REUSE_SECONDS while it, plus the jobs this
    process has queued since, stays under half the limit: far from the limit an upload is
    admitted without asking Redis; nearer, every upload reads the length, as it always did.
    """

    def __init__(self) -> None:
        self._depth = 0
        self._read_at = -math.inf

    async def full(self, connection: AsyncRedis, limit: int) -> bool:
        """Whether `limit` or more jobs wait."""
        moment = time.monotonic()
        if moment - self._read_at < DEPTH_REUSE_SECONDS and 2 * self._depth < limit:
            return False
        self._depth = await jobs.queued_count(connection)
        self._read_at = moment
        return self._depth >= limit

    def queued(self, count: int) -> None:
        """Count jobs this process has just queued."""
        self._depth += count


async def admit(connection: AsyncRedis, settings: Settings, who: str, depth: QueueDepth) -> None:
    """Before reading an upload: count it against `who`'s rate limit, refuse it if the queue is full."""
    await check_rate(connection, settings, who)
    if await depth.full(connection, settings.max_queued):
        raise QueueFull()


class Carrying:
    """How many uploads of this API process wait with their bytes carried through Redis."""

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """Whether the upload waiting in the block may be carried (names.CARRY_MAX_WAITING)."""
        if self.count >= names.CARRY_MAX_WAITING:
            yield False
            return
        self.count += 1
        try:
            yield True
        finally:
            self.count -= 1


@dataclass(frozen=True)
class Waiting:
    """A client waiting for its upload's job (`?wait=`): for how long, and whether for the
    image itself (`Accept: image/*`) or its job resource."""

    seconds: float
    image: bool


def carry(store: Blobs, upload: Upload, job_id: str, waiting: Waiting | None) -> jobs.Carry | None:
    """What a job carries through Redis: with files in a bucket, a small upload whose client
    waits (names.CARRY_MAX_BYTES), and its output back if the client waits for the image."""
    if waiting is None or upload.size > names.CARRY_MAX_BYTES:
        return None
    if store.local_path(job_id, "input") is not None:  # a folder: its files are read as cheaply
        return None
    return jobs.Carry(upload.path.read_bytes(), waiting.seconds, waiting.image)


def accept(
    connection: Redis,
    settings: Settings,
    upload: Upload,
    options: Options,
    owner: str | None = None,
    *,
    batch_id: str | None = None,
    callback_url: str | None = None,
    job_id: str | None = None,
    waiting: Waiting | None = None,
) -> Job:
    """Check an upload and queue it as a new job; on any refusal no file is left behind.

    The type is sniffed with libmagic against the allowlist, then the header is read with
    Pillow (no pixels decoded) for its size; both must agree on the format. For a client
    `waiting` on a small upload, the bucket's files are carried through Redis too (`carry`).
    """
    try:
        sniffed = imaging.sniff(upload.head)
        header = imaging.read_header(upload.path, sniffed, settings.max_pixels)
        job = Job(
            id=job_id or storage.new_job_id(),
            status=JobStatus.QUEUED,
            created_at=utc_now(),
            input=InputInfo(
                filename=upload.filename,
                media_type=header.media_type,
                bytes=upload.size,
                width=header.width,
                height=header.height,
            ),
            options=options,
            owner=owner,
            batch_id=batch_id,
            callback_url=callback_url,
        )
        store = blobs.store_for(settings)
        carried = carry(store, upload, job.id, waiting)
        if carried is None:
            store.publish(upload.path, job.id, "input")
        else:
            store.save(carried.input, job.id, "input")
        try:
            jobs.submit(connection, settings, job, carried)
            metrics.UPLOAD_BYTES.inc(upload.size)
        except BaseException:
            store.delete(job.id)
            raise
        return job
    finally:
        upload.path.unlink(missing_ok=True)


def accept_variant(connection: Redis, settings: Settings, source: Job, options: Options) -> Job:
    """Queue a new job that compresses `source`'s stored upload again with other options.

    The new job gets its own copy of the upload (a hard link on the local disk, a copy inside
    the bucket), so either job may be deleted first; JobExpired if the source no longer keeps it.
    """
    job = Job(
        id=storage.new_job_id(),
        status=JobStatus.QUEUED,
        created_at=utc_now(),
        input=source.input,
        options=options,
        owner=source.owner,
    )
    store = blobs.store_for(settings)
    try:
        store.duplicate(source.id, job.id, "input")
    except FileNotFoundError:
        raise JobExpired("This job no longer keeps its original (it failed or expired).") from None
    try:
        jobs.submit(connection, settings, job)
    except BaseException:
        store.delete(job.id)
        raise
    return job


def accept_batch(
    connection: Redis,
    settings: Settings,
    uploads: list[Upload],
    options: Options,
    owner: str | None,
    callback_url: str | None,
) -> Batch:
    """Queue each upload as a job of one new batch; files refused for what they are become `rejected`.

    Each job and refusal keeps its file's position in the upload. If no file is accepted, nothing
    is stored and the last file's refusal is raised, with every file's in `rejected`.
    """
    batch_id = batches.new_batch_id()
    job_ids: list[str] = []
    job_indexes: list[int] = []
    rejected: list[Rejected] = []
    try:
        for index, upload in enumerate(uploads):
            try:
                if upload.refusal is not None:
                    raise upload.refusal
                job = accept(connection, settings, upload, options, owner, batch_id=batch_id)
            except (UnsupportedMedia, TooLarge, CorruptImage, BadOption) as refusal:
                rejected.append(Rejected(upload.filename, JobError(refusal.code, refusal.message), index))
                if not job_ids and len(rejected) == len(uploads):
                    refusal.details = {"rejected": [item.to_dict() for item in rejected]}
                    raise
                continue
            job_ids.append(job.id)
            job_indexes.append(index)
    finally:
        for upload in uploads:
            upload.path.unlink(missing_ok=True)
    batch = Batch(
        batch_id, utc_now(), tuple(job_ids), tuple(rejected), callback_url, owner, tuple(job_indexes)
    )
    batches.save(connection, batch, settings.retention_seconds, settings.job_timeout_seconds)
    return batch
