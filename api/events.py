"""Server-Sent Events of job and batch status changes, driven by the process's JobEvents fan-out
(docs/design.md, "Event streams")."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.auth import caller
from api.services import services
from shared import batches, jobs
from shared.errors import JobExpired, JobNotFound
from shared.resources import batch_resource, job_resource
from shared.schema import Job

log = logging.getLogger("imgpress.events")

#: Seconds between comment lines that keep idle proxies from closing a quiet stream.
PING_SECONDS = 15
#: Seconds before a started stream reads again after Redis did not answer.
RETRY_SECONDS = 1.0

T = TypeVar("T")


async def read_until_answered(read: Callable[[], Awaitable[T]]) -> T:
    """The result of `read()`, tried again every RETRY_SECONDS while Redis does not answer.

    Used once a stream has started: its client has a 200 and can no longer be told 503.
    """
    while True:
        try:
            return await read()
        except RedisError as exc:
            log.warning("event stream: Redis did not answer (%s); reading again", exc)
            await asyncio.sleep(RETRY_SECONDS)


def event_stream(events: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    """An SSE response for these events, not buffered by proxies."""
    return EventSourceResponse(events, ping=PING_SECONDS, headers={"X-Accel-Buffering": "no"})


def _event(name: str, data: dict[str, Any], event_id: str) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data), event=name, id=event_id)


async def job_events(request: Request, job_id: str) -> AsyncIterator[ServerSentEvent]:
    """Events of one job: its status name with the job resource; `deleted` if it goes away."""
    found = services(request)
    last = None
    with found.events.watch(job_id) as changed:
        while True:
            try:
                job = changed.announced(job_id)
                if job is None:
                    job = await read_until_answered(
                        functools.partial(jobs.load_async, found.async_redis, job_id)
                    )
            except (JobExpired, JobNotFound):
                yield _event("deleted", {"id": job_id}, f"{job_id}:deleted")
                return
            if job.owner != caller(request):
                return
            if job.status is not last:
                last = job.status
                yield _event(job.status.value, job_resource(job), f"{job_id}:{job.status.value}")
            if job.status.is_terminal or found.events.closed:
                return  # an EventSource reconnects by itself, to a server that runs
            await changed.wait()
            changed.clear()


async def batch_events(request: Request, batch: batches.Batch) -> AsyncIterator[ServerSentEvent]:
    """Events of a batch: a `job` event per job status change, then a `batch` event with the totals.

    The first round reports every job; the stream ends after the `batch` event that finds them
    all finished, failed or deleted.
    """
    found = services(request)
    seen: dict[str, str] = {}
    with found.events.watch(*batch.job_ids) as changed:
        while True:
            members: list[Job | None] = await read_until_answered(
                functools.partial(run_in_threadpool, batches.members, found.redis, batch)
            )
            for job_id, job in zip(batch.job_ids, members, strict=True):
                status = "deleted" if job is None else job.status.value
                if seen.get(job_id) != status:
                    seen[job_id] = status
                    data = {"id": job_id, "status": "deleted"} if job is None else job_resource(job)
                    yield _event("job", data, f"{job_id}:{status}")
            summary = batch_resource(batch, members)
            del summary["jobs"]  # sent one by one above
            yield _event("batch", summary, f"{batch.id}:{summary['status']}")
            if summary["status"] == "finished" or found.events.closed:
                return
            await changed.wait()
            changed.clear()
