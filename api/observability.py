"""Seeing the service run: request ids, one log line and metrics per request, and GET /metrics."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.services import services
from shared import logs, names
from shared.metrics import HTTP_REQUESTS, HTTP_SECONDS

log = logging.getLogger("imgpress.http")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(request: Request) -> str:
    """The id of this request (the client's X-Request-ID if sane, else a new one)."""
    found: str = request.scope.get("imgpress.request_id", "")
    return found


class ObservabilityMiddleware:
    """Give every request an id (echoed in X-Request-ID), count and time it, log one line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        ident = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope["imgpress.request_id"] = ident
        # Every record logged while serving this request carries its id.
        logs.REQUEST_ID.set(ident)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", ident.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(seconds)
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={"request_id": ident, "route": route, "status": status, "ms": round(seconds * 1000, 2)},
            )


class QueueCollector(Collector):
    """Queue depth and RQ registry sizes, read from Redis at scrape time."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("imgpress_queue_depth", "Jobs waiting in each queue.", labels=["queue"])
        registries = GaugeMetricFamily(
            "imgpress_rq_registry_jobs", "Jobs in RQ's registries.", labels=["queue", "registry"]
        )
        try:
            for name in names.WORKER_QUEUES:
                queue = Queue(name, connection=self.connection)
                depth.add_metric([name], queue.count)
                for label, registry in (
                    ("started", StartedJobRegistry),
                    ("failed", FailedJobRegistry),
                    ("scheduled", ScheduledJobRegistry),
                ):
                    registries.add_metric([name, label], registry(queue=queue).count)
        except RedisError:
            return  # Redis is away: the scrape still shows the process's own metrics
        yield depth
        yield registries


def _scrape(connection: Redis) -> bytes:
    queues = CollectorRegistry()
    queues.register(QueueCollector(connection))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)  # type: ignore[no-untyped-call]
    else:
        processes = REGISTRY  # this process only: workers' counts need the shared folder
    return generate_latest(processes) + generate_latest(queues)


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus metrics of the API and every worker, and the queues."""
    body = await run_in_threadpool(_scrape, services(request).redis)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
