"""Liveness and readiness probes."""

from __future__ import annotations

from redis import Redis
from rq import Queue, worker_registration
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.services import services
from shared import names
from shared.errors import ServiceUnavailable


async def healthz(request: Request) -> Response:
    """GET /healthz: the API process is up (it checks nothing else)."""
    return JSONResponse({"status": "ok"})


def count_workers(connection: Redis) -> int:
    """How many workers that compress images are alive (a RedisError if Redis does not answer).

    Webhook workers do not count. A worker killed without deregistering stays in RQ's sets of
    workers; only its key, which each heartbeat keeps alive for the worker's TTL, tells it is gone.
    """
    keys = worker_registration.get_keys(Queue(names.QUEUE, connection=connection))
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.exists(key)
        return sum(pipe.execute())


async def readyz(request: Request) -> Response:
    """GET /readyz: Redis answers and at least one worker is alive; 503 otherwise."""
    workers = await run_in_threadpool(count_workers, services(request).redis)
    if workers == 0:
        raise ServiceUnavailable("No compression worker is running; jobs would wait in the queue.")
    return JSONResponse({"status": "ready", "workers": workers})
