"""The Starlette application: routes, lifespan and error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis import BlockingConnectionPool, Redis
from redis.asyncio import BlockingConnectionPool as AsyncBlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route

from api import batches, capabilities, health, jobs, observability, openapi, page, seed
from api.auth import ApiKeyMiddleware
from api.errors import EXCEPTION_HANDLERS
from api.intake import Carrying, QueueDepth
from api.limits import RequestBudget
from api.observability import ObservabilityMiddleware
from api.services import Services
from api.waiting import JobEvents
from filestore import blobs
from screening import imaging
from shared import logs, schedules, storage
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Redis must answer quickly or the API answers 503: a hung Redis must never hang a request.
REDIS_TIMEOUT_SECONDS = 1.0
#: How long a request waits for a pooled Redis connection before it is answered 503.
POOL_WAIT_SECONDS = 1.0

routes = [
    Route("/", page.index, methods=["GET"]),
    Route("/favicon.ico", page.favicon, methods=["GET"]),
    Mount("/static", app=page.static_files(), name="static"),
    Route("/v1/jobs", jobs.create_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}", jobs.get_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}", jobs.delete_job, methods=["DELETE"]),
    Route("/v1/jobs/{job_id}/result", jobs.get_result, methods=["GET"]),
    Route("/v1/jobs/{job_id}/input", jobs.get_input, methods=["GET"]),
    Route("/v1/jobs/{job_id}/events", jobs.job_events, methods=["GET"]),
    Route("/v1/jobs/{job_id}/variants", jobs.create_variant, methods=["POST"]),
    Route("/v1/limits", capabilities.get_limits, methods=["GET"]),
    Route("/v1/batches", batches.create_batch, methods=["POST"]),
    Route("/v1/batches/{batch_id}", batches.get_batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}", batches.delete_batch, methods=["DELETE"]),
    Route("/v1/batches/{batch_id}/events", batches.batch_events, methods=["GET"]),
    Route("/v1/batches/{batch_id}/archive", batches.get_archive, methods=["GET"]),
    Route("/v1/archive", batches.get_jobs_archive, methods=["GET"]),
    Route("/upload", seed.upload, methods=["POST"]),
    Route("/task/{task_id}", seed.task, methods=["GET"]),
    Route("/download/{task_id}", seed.download, methods=["GET"]),
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", observability.metrics, methods=["GET"]),
    Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
    Route("/docs", openapi.docs_page, methods=["GET"]),
]


def create_app(settings: Settings) -> Starlette:
    """Build the API for these settings; Redis connections are made in the lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        storage.ensure_dirs(settings.data_dir)
        blobs.store_for(settings)  # a bucket without the `s3` extra fails here, at start-up
        await run_in_threadpool(imaging.load_checkers)  # and starts the threads uploads are checked in
        # One immediate retry on a fresh connection: after a Redis restart the pooled
        # connections are dead, and the first command on each must not become a 503.
        timeouts = {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "socket_timeout": REDIS_TIMEOUT_SECONDS}
        # Blocking pools: past IMGPRESS_REDIS_MAX_CONNECTIONS a request waits up to
        # POOL_WAIT_SECONDS for a connection to come back, instead of failing at once.
        pooled: dict[str, Any] = {
            "retry_on_error": [RedisConnectionError],
            "max_connections": settings.redis_max_connections,
            "timeout": POOL_WAIT_SECONDS,
            **timeouts,
        }
        redis = Redis.from_pool(
            BlockingConnectionPool.from_url(settings.redis_url, retry=Retry(NoBackoff(), 1), **pooled)
        )
        async_redis = AsyncRedis.from_pool(
            AsyncBlockingConnectionPool.from_url(
                settings.redis_url, retry=AsyncRetry(NoBackoff(), 1), **pooled
            )
        )
        # The subscription waits for messages indefinitely, so it has no read timeout.
        pubsub_redis = AsyncRedis.from_url(
            settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, health_check_interval=30
        )
        events = JobEvents(pubsub_redis)
        app.state.job_events = events  # for the server to release waiting requests as it stops
        listener = asyncio.create_task(events.run(), name="imgpress-job-events")
        try:
            schedules.register_sweep(redis, settings)
        except RedisError as exc:
            # The API still starts (and answers 503 until Redis is back); the next start
            # registers the sweep again.
            log.warning("could not register the periodic sweep: %s", exc)
        try:
            yield {"services": Services(settings, redis, async_redis, events, QueueDepth(), Carrying())}
        finally:
            listener.cancel()
            # Bounded: a shutdown must never hang on the subscription.
            await asyncio.wait([listener], timeout=5)
            await async_redis.aclose()
            await pubsub_redis.aclose()
            redis.close()

    logs.configure()
    middleware = [
        Middleware(ObservabilityMiddleware),
        Middleware(RequestBudget, limit=settings.max_connections),
        Middleware(ApiKeyMiddleware, settings=settings),
    ]
    if settings.cors_origins:
        # Before the key check, so browsers' preflight requests are answered without a key.
        middleware.insert(2, cors(settings))
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS, middleware=middleware
    )


def cors(settings: Settings) -> Middleware:
    """CORS for the configured origins (IMGPRESS_CORS_ORIGINS)."""
    return Middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Content-Disposition"],
        expose_headers=["Location", "Retry-After", "Content-Disposition", "ETag"],
        max_age=600,
    )
