"""The original app's routes (a FastAPI + Celery tutorial), answering as it does, mapped onto v1:
every outcome is HTTP 200 with `data` or `error` in the body, except FastAPI's 422 for a bad form."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import params
from api.errors import envelope_error_body, headers_for, status_for, translate
from api.jobs import load_job, output_response, submit_upload
from api.uploads import MissingFile
from shared.errors import JobExpired, JobNotFound, UnsupportedMedia
from shared.schema import Job, JobStatus

#: The original app accepted quality from 20 to 100.
SEED_MIN_QUALITY = 20
#: The original's worker never reported STARTED, so neither do these routes.
CELERY_STATES = {
    JobStatus.QUEUED: "PENDING",
    JobStatus.STARTED: "PENDING",
    JobStatus.FINISHED: "SUCCESS",
}
#: Every `status` these routes report.
STATES = ["PENDING", "SUCCESS"]
#: The original's messages, word for word, for the cases it names.
UPLOADED = "File uploaded successfully"
STATUS_READ = "Task status retrieved successfully"
NOT_AN_IMAGE = "File is not an image"
NOT_READY = "File is not ready for download yet. Please try again later"
DELETED = "File is already deleted, please try to upload again"
#: What pydantic accepts as a whole number in a form field: "50", " 50 ", "50.0".
_WHOLE_NUMBER = re.compile(r"\s*([+-]?\d+)(?:\.0*)?\s*")

Endpoint = Callable[[Request], Awaitable[Response]]


class FormInvalid(Exception):
    """The form broke the original's field rules; FastAPI answered those with 422 and `detail`."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("invalid form")
        self.detail = detail


def data_envelope(data: dict[str, Any], message: str) -> JSONResponse:
    """A success in the original's envelope."""
    return JSONResponse({"data": data, "message": message, "code": 200})


def error_envelope(message: str, code: int, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An error in the original's envelope: HTTP 200, the status in `code`."""
    return JSONResponse(envelope_error_body(message, code), headers=headers)


def in_envelope(endpoint: Endpoint) -> Endpoint:
    """Answer every error an endpoint lets out in the envelope (a bad form as FastAPI did)."""

    @wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except FormInvalid as invalid:
            return JSONResponse({"detail": invalid.detail}, status_code=422)
        except Exception as exc:  # translate() decides what each one means
            error = translate(exc)
            return error_envelope(error.message, status_for(error), headers_for(error))

    return wrapper


def missing(field: str) -> dict[str, Any]:
    """FastAPI's complaint about a required form field that was not sent."""
    return {"type": "missing", "loc": ["body", field], "msg": "Field required", "input": None}


def quality_problems(raw: str) -> list[dict[str, Any]]:
    """FastAPI's complaints about the quality field (`Form(..., ge=20, le=100)`), if any."""
    if raw == "":
        return [missing("quality")]
    loc = ["body", "quality"]
    match = _WHOLE_NUMBER.fullmatch(raw)
    if match is None:
        message = "Input should be a valid integer, unable to parse string as an integer"
        return [{"type": "int_parsing", "loc": loc, "msg": message, "input": raw}]
    value = int(match.group(1))
    if value < SEED_MIN_QUALITY:
        message = f"Input should be greater than or equal to {SEED_MIN_QUALITY}"
        return [{"type": "greater_than_equal", "loc": loc, "msg": message, "input": raw, "ctx": {"ge": 20}}]
    if value > 100:
        message = "Input should be less than or equal to 100"
        return [{"type": "less_than_equal", "loc": loc, "msg": message, "input": raw, "ctx": {"le": 100}}]
    return []


def tutorial_form(values: Mapping[str, str]) -> Mapping[str, str]:
    """The form in the options' terms; FormInvalid as FastAPI would have answered a bad quality."""
    raw = values.get("quality", "")
    problems = quality_problems(raw)
    if problems:
        raise FormInvalid(problems)
    match = _WHOLE_NUMBER.fullmatch(raw)
    assert match is not None
    return {**values, "quality": str(int(match.group(1)))}


def task_result(job: Job) -> dict[str, Any] | None:
    """The Celery-style `result` of a job: the file's name (never a server path), sizes, its URL."""
    if job.status is JobStatus.FINISHED and job.output is not None:
        return {
            "file_path": job.input.filename,
            "old_filesize": job.input.bytes,
            "new_filesize": job.output.bytes,
            "download_url": f"/download/{job.id}",
        }
    return None


@in_envelope
async def upload(request: Request) -> Response:
    """POST /upload: queue the image in the form's `file` field at `quality` (20-100)."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise FormInvalid([missing("quality"), missing("file")])
    try:
        job = await submit_upload(
            request, params.TUTORIAL_UPLOAD, min_quality=SEED_MIN_QUALITY, adapt=tutorial_form
        )
    except MissingFile as no_file:
        raise FormInvalid([*quality_problems(no_file.fields.get("quality", "")), missing("file")]) from None
    except UnsupportedMedia:
        return error_envelope(NOT_AN_IMAGE, 400)
    return data_envelope({"task_id": job.id}, UPLOADED)


@in_envelope
async def task(request: Request) -> Response:
    """GET /task/{task_id}: the job in Celery's terms, PENDING for an id it does not know."""
    task_id = request.path_params["task_id"]
    try:
        job = await load_job(request, task_id)
    except (JobNotFound, JobExpired):
        # Celery cannot tell an unknown or forgotten id from one still waiting; nor could the original.
        return data_envelope({"id": task_id, "status": "PENDING", "result": None}, STATUS_READ)
    if job.status is JobStatus.FAILED:
        assert job.error is not None
        return error_envelope(job.error.message, 500)
    data = {"id": job.id, "status": CELERY_STATES[job.status], "result": task_result(job)}
    return data_envelope(data, STATUS_READ)


@in_envelope
async def download(request: Request) -> Response:
    """GET /download/{task_id}: the compressed file once the task has succeeded."""
    try:
        job = await load_job(request, request.path_params["task_id"])
        if job.status is JobStatus.FAILED:
            assert job.error is not None
            return error_envelope(job.error.message, 400)
        if job.status is not JobStatus.FINISHED:
            return error_envelope(NOT_READY, 400)
        return await output_response(request, job)
    except JobNotFound:
        return error_envelope(NOT_READY, 400)
    except JobExpired:
        return error_envelope(DELETED, 500)
