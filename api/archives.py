"""The ZIP of a batch's finished outputs, streamed as it is written (zipstream-ng), never built in memory."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import StreamingResponse
from zipstream import ZIP_STORED, ZipStream

from api.downloads import download_name
from shared import storage
from shared.schema import Job, JobStatus


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


def finished(members: list[Job | None], data_dir: Path) -> list[Job]:
    """The jobs whose output is there to be archived."""
    return [
        job
        for job in members
        if job is not None
        and job.status is JobStatus.FINISHED
        and storage.output_path(data_dir, job.id).exists()
    ]


def archive_response(members: list[Job], data_dir: Path, filename: str) -> StreamingResponse:
    """The outputs as one ZIP attachment; images are already compressed, so entries are stored."""
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    for job, name in zip(members, entry_names(members), strict=True):
        archive.add_path(str(storage.output_path(data_dir, job.id)), name)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(len(archive)),
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(iter(archive), media_type="application/zip", headers=headers)
