"""The v1 job endpoints. Each parses, calls one function, responds."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import events, intake, params, uploads
from api.auth import caller, client_address
from api.downloads import input_response, result_response
from api.params import MAX_WAIT_SECONDS, Accepted, Fields
from api.services import services
from filestore import blobs
from shared import callbacks, jobs, storage
from shared.errors import BadOption, JobFailed, JobNotFinished, JobNotFound
from shared.options import Options
from shared.resources import job_resource as resource
from shared.resources import job_url
from shared.schema import Job, JobStatus

Adapt = Callable[[Fields], Mapping[str, str]]


async def admit(request: Request, accepted: Accepted, min_quality: int = 1) -> tuple[str | None, Fields]:
    """The checks before an upload's body is read: query names and options, rate, capacity.

    Returns the caller's owner digest and the query's values.
    """
    found = services(request)
    # The query is known before the body: refuse a bad one without reading the upload.
    query = params.query(request, accepted)
    Options.parse(query, min_quality=min_quality)
    owner = caller(request)
    await intake.admit(found.async_redis, found.settings, owner or client_address(request), found.queue_depth)
    return owner, query


async def parse_fields(
    request: Request,
    accepted: Accepted,
    query: Fields,
    form: Mapping[str, str],
    min_quality: int = 1,
    adapt: Adapt | None = None,
) -> tuple[Options, str | None]:
    """The options and checked callback URL from the query and the form fields.

    `adapt`, if given, turns the route's values into the options' terms first (or refuses them).
    """
    values = params.read(accepted, query, form)
    url = values.get(params.CALLBACK_URL.name, "").strip() if accepted.takes(params.CALLBACK_URL) else ""
    options = Options.parse(adapt(values) if adapt else values, min_quality=min_quality)
    if not url:
        return options, None
    return options, await run_in_threadpool(callbacks.check_url, url, services(request).settings)


async def submit_upload(
    request: Request,
    accepted: Accepted,
    *,
    min_quality: int = 1,
    job_id: str | None = None,
    adapt: Adapt | None = None,
    waiting: intake.Waiting | None = None,
) -> Job:
    """Receive the request's upload and queue it as a job (shared with the tutorial routes)."""
    found = services(request)
    owner, query = await admit(request, accepted, min_quality)
    filename = query.get(params.FILENAME.name, "") if accepted.takes(params.FILENAME) else ""
    upload = await uploads.receive(request, found.settings, filename)
    try:
        fields = upload.fields
        options, callback_url = await parse_fields(request, accepted, query, fields, min_quality, adapt)
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise
    job = await run_in_threadpool(
        functools.partial(intake.accept, callback_url=callback_url, job_id=job_id, waiting=waiting),
        found.redis,
        found.settings,
        upload,
        options,
        owner,
    )
    found.queue_depth.queued(1)
    return job


async def load_job(request: Request, job_id: str) -> Job:
    """The caller's job named in the request; JobNotFound or JobExpired if there is none."""
    return owned(request, await jobs.load_async(services(request).async_redis, job_id))


def owned(request: Request, job: Job) -> Job:
    """The job if it belongs to the caller; JobNotFound (as for any other id) if not."""
    if job.owner != caller(request):
        raise JobNotFound()
    return job


async def wait_for_job(
    request: Request, job_id: str, seconds: float, first: Awaitable[Job] | None = None
) -> Job:
    """The job once it has finished or failed, or as it is after `seconds`.

    `first`, if given, is the upload that creates the job: it runs inside the watch (so no
    change can slip by) and its answer is the job's first state, with no read back.
    """
    found = services(request)
    with found.events.watch(job_id) as changed:
        job = await (first if first is not None else load_job(request, job_id))
        deadline = time.monotonic() + seconds
        while not job.status.is_terminal and not found.events.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):  # no task per wait, unlike wait_for
                    await changed.wait()
            except TimeoutError:
                break
            changed.clear()
            announced = changed.announced(job_id)
            job = owned(request, announced) if announced else await load_job(request, job_id)
    return job


def parse_wait(values: Fields) -> float:
    """The ?wait= parameter in seconds (0 when absent)."""
    raw = values.get(params.WAIT.name, "")
    if raw == "":
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        raise BadOption(f"'wait' must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}.") from None
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise BadOption(f"'wait' must be from 0 to {MAX_WAIT_SECONDS:g} seconds.")
    return seconds


async def finished_output(request: Request, job_id: str) -> Response:
    """The result download for a job, or the error that explains why there is none."""
    job = await load_job(request, job_id)
    if job.status is JobStatus.FAILED:
        assert job.error is not None
        raise JobFailed(job.error.code, job.error.message)
    if job.status is not JobStatus.FINISHED:
        raise JobNotFinished()
    return await output_response(request, job)


async def output_response(
    request: Request, job: Job, from_redis: bool = False, redirect: bool = True
) -> Response:
    """A finished job's output file as the response (downloads.result_response): from Redis
    if it is there (`from_redis`: this request's upload may have been carried); `redirect`: a
    presigned URL may answer instead."""
    found = services(request)
    store = blobs.store_for(found.settings)
    if store.local_path(job.id, "output") is not None:
        # A local file is read without a thread hop: typical outputs are one page-cache read.
        return result_response(request, job, store)
    carried = await jobs.take_carried_async(found.async_redis, job.id, "output") if from_redis else None
    if carried is not None:
        return result_response(request, job, store, carried)
    return await run_in_threadpool(result_response, request, job, store, None, redirect)


def prefers_image(accept: str) -> bool:
    """Whether an Accept header ranks some image type above JSON (`Accept: image/*` does)."""
    image = data = -1.0
    for item in accept.split(","):
        media_type, *parameters = (part.strip().lower() for part in item.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if media_type.startswith("image/"):
            image = max(image, weight)
        elif media_type in ("application/json", "application/*", "*/*"):
            data = max(data, weight)
    return image > 0 and image > data


async def output_answer(request: Request, job: Job, from_redis: bool = False) -> Response:
    """A finished job's output as the answer to its upload, the job resource in `Imgpress-Job`."""
    # The image itself, never a redirect: a client follows a 307 with its POST.
    response = await output_response(request, job, from_redis, redirect=False)
    response.headers["Location"] = job_url(job.id)
    response.headers["Imgpress-Job"] = json.dumps(resource(job), separators=(",", ":"))
    response.headers["Vary"] = "Accept"
    return response


async def create_job(request: Request) -> Response:
    """POST /v1/jobs: upload an image (multipart or raw body) and queue it.

    With ?wait=N the answer comes when the job ends (200) or N seconds pass (202), saving
    scripts a round trip; with `Accept: image/*` too, a finished job's answer is the
    compressed image itself, saving the download's.
    """
    seconds = parse_wait(params.query(request, params.JOB_UPLOAD))
    image = prefers_image(request.headers.get("accept", ""))
    may_carry = False
    if seconds:
        job_id = storage.new_job_id()
        with services(request).carrying.slot() as may_carry:
            waiting = intake.Waiting(seconds, image) if may_carry else None
            upload = submit_upload(request, params.JOB_UPLOAD, job_id=job_id, waiting=waiting)
            job = await wait_for_job(request, job_id, seconds, upload)
    else:
        job = await submit_upload(request, params.JOB_UPLOAD)
    if job.status is JobStatus.FINISHED and image:
        return await output_answer(request, job, may_carry)
    status = 200 if job.status.is_terminal else 202
    headers = {"Location": job_url(job.id), "Vary": "Accept"}
    return JSONResponse(resource(job), status_code=status, headers=headers)


async def get_job(request: Request) -> Response:
    """GET /v1/jobs/{id}: the job resource, optionally waiting up to ?wait= seconds for its end."""
    job_id = request.path_params["job_id"]
    seconds = parse_wait(params.query(request, params.JOB_READ))
    job = await (wait_for_job(request, job_id, seconds) if seconds else load_job(request, job_id))
    return JSONResponse(resource(job))


async def get_result(request: Request) -> Response:
    """GET /v1/jobs/{id}/result: the compressed image."""
    return await finished_output(request, request.path_params["job_id"])


async def job_events(request: Request) -> Response:
    """GET /v1/jobs/{id}/events: Server-Sent Events of the job's status changes until it ends."""
    job = await load_job(request, request.path_params["job_id"])
    return events.event_stream(events.job_events(request, job.id))


async def get_input(request: Request) -> Response:
    """GET /v1/jobs/{id}/input: the image as uploaded, while the job keeps it (for comparing)."""
    job = await load_job(request, request.path_params["job_id"])
    return await run_in_threadpool(input_response, job, blobs.store_for(services(request).settings))


async def create_variant(request: Request) -> Response:
    """POST /v1/jobs/{id}/variants: compress the job's stored upload again with other options.

    No upload: the options come as form fields (or query parameters), unset ones take their
    defaults, and the answer is a new job of the same owner (202), to follow like any other.
    """
    found = services(request)
    source = await load_job(request, request.path_params["job_id"])
    await intake.admit(
        found.async_redis, found.settings, caller(request) or client_address(request), found.queue_depth
    )
    values = await params.query_and_form(request, params.VARIANT, max_fields=uploads.MAX_FIELDS)
    options = Options.parse(values)
    job = await run_in_threadpool(intake.accept_variant, found.redis, found.settings, source, options)
    found.queue_depth.queued(1)
    return JSONResponse(resource(job), status_code=202, headers={"Location": job_url(job.id)})


async def delete_job(request: Request) -> Response:
    """DELETE /v1/jobs/{id}: delete the job's files and record now."""
    found = services(request)
    job = await load_job(request, request.path_params["job_id"])
    await run_in_threadpool(
        functools.partial(jobs.delete, asked=True), found.redis, blobs.store_for(found.settings), job.id
    )
    return Response(status_code=204)
