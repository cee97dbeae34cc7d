"""Turning a received upload into a queued job: check its type and size, store it, enqueue it."""

from __future__ import annotations

from redis import Redis

from api.ratelimit import check_rate
from api.uploads import Upload
from shared import imaging, jobs, storage
from shared.errors import QueueFull
from shared.options import Options
from shared.schema import InputInfo, Job, JobStatus, utc_now
from shared.settings import Settings


def admit(connection: Redis, settings: Settings, who: str) -> None:
    """Before reading an upload: count it against `who`'s rate limit, refuse it if the queue is full."""
    check_rate(connection, settings, who)
    if jobs.queued_count(connection) >= settings.max_queued:
        raise QueueFull()


def accept(
    connection: Redis, settings: Settings, upload: Upload, options: Options, owner: str | None = None
) -> Job:
    """Check an upload and queue it as a new job; on any refusal no file is left behind.

    The type is sniffed with libmagic against the allowlist, then the header is read with
    Pillow (no pixels decoded) for its size; both must agree on the format.
    """
    try:
        sniffed = imaging.sniff(upload.head)
        header = imaging.read_header(upload.path, sniffed, settings.max_pixels)
        job = Job(
            id=storage.new_job_id(),
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
        )
        storage.move_into_place(upload.path, storage.input_path(settings.data_dir, job.id))
        try:
            jobs.submit(connection, settings, job)
        except BaseException:
            storage.delete_job_files(settings.data_dir, job.id)
            raise
        return job
    finally:
        upload.path.unlink(missing_ok=True)
