"""Liveness and readiness probes."""

from __future__ import annotations

from redis import Redis
from rq import Worker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.services import services
from shared.errors import ServiceUnavailable


async def healthz(request: Request) -> Response:
    """GET /healthz: the API process is up (it checks nothing else)."""
    return JSONResponse({"status": "ok"})


def count_workers(connection: Redis) -> int:
    """How many RQ workers are registered (a RedisError if Redis does not answer)."""
    return int(Worker.count(connection=connection))


async def readyz(request: Request) -> Response:
    """GET /readyz: Redis answers and at least one worker is registered; 503 otherwise."""
    workers = await run_in_threadpool(count_workers, services(request).redis)
    if workers == 0:
        raise ServiceUnavailable("No worker is running; jobs would wait in the queue.")
    return JSONResponse({"status": "ready", "workers": workers})
