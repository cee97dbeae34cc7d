"""The origin app's routes (FastAPI + Celery tutorial), kept for its clients, mapped onto v1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.errors import headers_for, status_for, translate
from api.jobs import finished_output, load_job, submit_upload
from shared.schema import Job, JobStatus

#: The origin app accepted quality from 20 to 100.
SEED_MIN_QUALITY = 20

CELERY_STATES = {
    JobStatus.QUEUED: "PENDING",
    JobStatus.STARTED: "STARTED",
    JobStatus.FINISHED: "SUCCESS",
    JobStatus.FAILED: "FAILURE",
}

Endpoint = Callable[[Request], Awaitable[Response]]


def envelope(data: Any, message: str, code: int) -> JSONResponse:
    """A response in the origin app's envelope."""
    return JSONResponse({"data": data, "message": message, "code": code}, status_code=code)


def in_envelope(endpoint: Endpoint) -> Endpoint:
    """Report errors in the envelope, with the same statuses as v1."""

    @wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:  # translate() decides what each one means
            error = translate(exc)
            status = status_for(error)
            response = envelope(None, error.message, status)
            response.headers.update(headers_for(error))
            return response

    return wrapper


def task_result(job: Job) -> dict[str, Any] | None:
    """The Celery-style `result` of a job: sizes and a download URL instead of a server path."""
    if job.status is JobStatus.FINISHED and job.output is not None:
        return {
            "download_url": f"/download/{job.id}",
            "old_filesize": job.input.bytes,
            "new_filesize": job.output.bytes,
        }
    if job.status is JobStatus.FAILED and job.error is not None:
        return {"error": job.error.message, "error_code": job.error.code}
    return None


@in_envelope
async def upload(request: Request) -> Response:
    """POST /upload: form fields `file` and `quality` (20-100)."""
    job = await submit_upload(request, min_quality=SEED_MIN_QUALITY)
    return envelope({"task_id": job.id}, "Image uploaded; compression queued.", 200)


@in_envelope
async def task(request: Request) -> Response:
    """GET /task/{task_id}: the job in Celery's terms."""
    job = await load_job(request, request.path_params["task_id"])
    data = {"id": job.id, "status": CELERY_STATES[job.status], "result": task_result(job)}
    return envelope(data, "Task status.", 200)


@in_envelope
async def download(request: Request) -> Response:
    """GET /download/{task_id}: the compressed file."""
    return await finished_output(request, request.path_params["task_id"])
