"""The v1 batch endpoints: several images uploaded together, watched and downloaded as one."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import archives, events, intake, params, uploads
from api.auth import caller, client_address
from api.jobs import admit, parse_fields
from api.ratelimit import check_rate
from api.services import services
from filestore import blobs
from shared import batches, callbacks
from shared.batches import Batch
from shared.errors import BatchNotFound, JobNotFinished
from shared.resources import batch_resource, batch_url


async def load_batch(request: Request) -> Batch:
    """The caller's batch named in the request; BatchNotFound or BatchExpired if there is none."""
    batch = await run_in_threadpool(batches.load, services(request).redis, request.path_params["batch_id"])
    if batch.owner != caller(request):
        raise BatchNotFound()
    return batch


async def receive_batch(request: Request) -> Batch:
    """Receive every file of the request and queue each as a job of one new batch."""
    found = services(request)
    settings = found.settings
    owner, query = await admit(request, params.BATCH_UPLOAD)
    received = await uploads.receive_many(request, settings)
    try:
        options, callback_url = await parse_fields(request, params.BATCH_UPLOAD, query, received[0].fields)
        for _ in received[1:]:  # one upload was counted before the body; count the others
            await check_rate(found.async_redis, settings, owner or client_address(request))
    except BaseException:
        for upload in received:
            upload.path.unlink(missing_ok=True)
        raise
    batch = await run_in_threadpool(
        intake.accept_batch, found.redis, settings, received, options, owner, callback_url
    )
    found.queue_depth.queued(len(batch.job_ids))
    # Its jobs may all have ended before the record existed: the worker could not announce it then.
    await run_in_threadpool(callbacks.announce_batch_if_done, found.redis, settings, batch.id)
    return batch


async def resource_of(request: Request, batch: Batch) -> Response:
    """The batch resource as JSON."""
    members = await run_in_threadpool(batches.members, services(request).redis, batch)
    return JSONResponse(batch_resource(batch, members))


async def create_batch(request: Request) -> Response:
    """POST /v1/batches: upload several images (`file` fields) with shared options."""
    batch = await receive_batch(request)
    response = await resource_of(request, batch)
    response.status_code = 202
    response.headers["Location"] = batch_url(batch.id)
    return response


async def get_batch(request: Request) -> Response:
    """GET /v1/batches/{id}: the batch with its jobs, counts by status and byte totals."""
    return await resource_of(request, await load_batch(request))


async def batch_events(request: Request) -> Response:
    """GET /v1/batches/{id}/events: Server-Sent Events of the batch's jobs until all have ended."""
    batch = await load_batch(request)
    return events.event_stream(events.batch_events(request, batch))


async def get_archive(request: Request) -> Response:
    """GET /v1/batches/{id}/archive: a ZIP of the outputs finished so far."""
    found = services(request)
    batch = await load_batch(request)
    members = await run_in_threadpool(batches.members, found.redis, batch)
    store = blobs.store_for(found.settings)
    ready = await run_in_threadpool(archives.finished, members, store)
    if not ready:
        raise JobNotFinished("No image of this batch has finished yet.")
    return await run_in_threadpool(archives.archive_response, ready, store, f"imgpress-{batch.id[:8]}.zip")


async def get_jobs_archive(request: Request) -> Response:
    """GET /v1/archive?job={id}&job={id}: a ZIP of these jobs' finished outputs, in that order."""
    found = services(request)
    job_ids = params.query_list(request, params.ARCHIVE, params.ARCHIVE_JOB)
    store = blobs.store_for(found.settings)
    most = found.settings.max_batch_files
    ready = await run_in_threadpool(archives.named, found.redis, store, job_ids, caller(request), most)
    return await run_in_threadpool(archives.archive_response, ready, store, f"imgpress-{ready[0].id[:8]}.zip")


async def delete_batch(request: Request) -> Response:
    """DELETE /v1/batches/{id}: delete the batch, its jobs and their files now."""
    found = services(request)
    batch = await load_batch(request)
    await run_in_threadpool(batches.delete, found.redis, blobs.store_for(found.settings), batch)
    return Response(status_code=204)
