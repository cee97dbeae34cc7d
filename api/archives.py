"""The ZIP of finished outputs (a batch's, or jobs named one by one), streamed as it is written
(zipstream-ng), never built in memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from redis import Redis
from starlette.responses import StreamingResponse
from zipstream import ZIP_STORED, ZipStream

from api.downloads import download_name
from filestore.blobs import Blobs, Readable
from shared import jobs
from shared.errors import BadOption, JobNotFinished, JobNotFound
from shared.schema import Job, JobStatus

#: Bytes read from an output at a time while the archive is sent.
CHUNK_BYTES = 256 * 1024


def entry_names(members: list[Job]) -> list[str]:
    """A unique, safe name inside the ZIP for each job's output: `name.ext`, then `name (2).ext`."""
    taken: set[str] = set()
    names = []
    for job in members:
        assert job.output is not None
        _, name = download_name(job.input.filename, job.output.media_type)
        stem, dot, extension = name.rpartition(".")
        if not dot:
            stem, extension = name, ""
        candidate, number = name, 1
        while candidate.casefold() in taken:
            number += 1
            candidate = f"{stem} ({number}){dot}{extension}"
        taken.add(candidate.casefold())
        names.append(candidate)
    return names


def finished(members: Iterable[Job | None], store: Blobs) -> list[Job]:
    """The jobs whose output is there to be archived."""
    return [
        job
        for job in members
        if job is not None and job.status is JobStatus.FINISHED and store.exists(job.id, "output")
    ]


def named(connection: Redis, store: Blobs, job_ids: list[str], owner: str | None, most: int) -> list[Job]:
    """The caller's jobs among `job_ids` (each once, in order) whose output is there to be archived.

    BadOption for no ids or more than `most`; JobNotFound when none is the caller's (another
    key's job reads as one that never was); JobNotFinished when none of them has finished.
    """
    wanted = list(dict.fromkeys(job_ids))
    if not wanted:
        raise BadOption("Name the jobs to archive: ?job={id}&job={id}.")
    if len(wanted) > most:
        raise BadOption(f"At most {most} jobs per archive; ask for the others in another.")
    members = [job for job in jobs.load_many(connection, wanted) if job is not None and job.owner == owner]
    if not members:
        raise JobNotFound("None of these jobs exists (or it belongs to another API key).")
    ready = finished(members, store)
    if not ready:
        raise JobNotFinished("None of these jobs has a finished image to download.")
    return ready


def archive_response(members: list[Job], store: Blobs, filename: str) -> StreamingResponse:
    """The outputs as one ZIP attachment; images are already compressed, so entries are stored.

    Every output is opened before the answer starts: a job deleted during the download keeps
    its open file (or object body) readable to the end, so the archive is always whole. An
    output already gone when the download starts is left out.
    """
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    opened: list[Readable] = []
    for job, name in zip(members, entry_names(members), strict=True):
        try:
            file, size = store.open(job.id, "output")
        except FileNotFoundError:
            continue
        opened.append(file)
        archive.add(_chunks(file), name, size=size)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(len(archive)),
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(_closing(archive, opened), media_type="application/zip", headers=headers)


def _chunks(file: Readable) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


def _closing(archive: ZipStream, opened: list[Readable]) -> Iterator[bytes]:
    """The archive's bytes; the files are closed when it ends or the client goes away."""
    try:
        yield from archive
    finally:
        for file in opened:
            file.close()
