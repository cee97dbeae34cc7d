"""Serving the app with uvicorn under imgpress's HTTP limits: a deadline for request headers, a
cap on open connections that fits the process's file descriptors, and proxy headers believed
only from IMGPRESS_FORWARDED_ALLOW_IPS. Body deadlines and the request budget are in the app."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import resource
import signal
import socket
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.app import create_app
from api.waiting import JobEvents
from shared import logs
from shared.settings import Settings

log = logging.getLogger("imgpress.server")

#: Descriptors kept for Redis connections, logs, libraries and the listening socket.
RESERVED_DESCRIPTORS = 64
#: Descriptors one request may hold: its socket, an upload's temp file, a Redis connection.
DESCRIPTORS_PER_REQUEST = 3
#: Connections allowed beyond the request budget, so probes and 503 answers still get through.
SPARE_CONNECTIONS = 32


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a cap on open connections.

    Uvicorn itself has no limit on the time a client takes to send its headers, so a client
    trickling header bytes would hold a connection for ever.
    """

    header_timeout: float = 10.0
    connection_cap: int = 1000 + SPARE_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.connection_cap:
            # Refused before it holds a descriptor for long: the cap keeps room for probes.
            self.transport.abort()
            return
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def descriptor_limit() -> int:
    """Raise the soft limit on open files to the hard one, and return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def fit_to_descriptors(settings: Settings, descriptors: int) -> Settings:
    """Settings whose request budget fits in `descriptors` open files (lowered, with a warning)."""
    fits = max(1, (descriptors - RESERVED_DESCRIPTORS - SPARE_CONNECTIONS) // DESCRIPTORS_PER_REQUEST)
    if settings.max_connections <= fits:
        return settings
    log.warning(
        "IMGPRESS_MAX_CONNECTIONS=%d needs more than the %d open files allowed; serving %d at once",
        settings.max_connections,
        descriptors,
        fits,
    )
    return dataclasses.replace(settings, max_connections=fits)


def protocol_for(settings: Settings) -> type[GuardedProtocol]:
    """The protocol class with these settings' header deadline and connection cap."""
    attributes = {
        "header_timeout": float(settings.header_timeout_seconds),
        "connection_cap": settings.max_connections + SPARE_CONNECTIONS,
    }
    return type("ImgpressProtocol", (GuardedProtocol,), attributes)


def config(settings: Settings) -> uvicorn.Config:
    """The uvicorn configuration that serves the app under these settings' limits."""
    logs.configure()
    settings = fit_to_descriptors(settings, descriptor_limit())
    trusted = list(settings.forwarded_allow_ips)
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=protocol_for(settings),
        timeout_keep_alive=settings.keepalive_seconds,
        # Without configured proxies X-Forwarded-* are ignored: anyone could send them.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        log_level="info",
        # uvicorn's records go through imgpress's JSON handler, not a configuration of its own.
        log_config=None,
        # Every request is logged once, as JSON, by api.observability: uvicorn's access log
        # would only repeat it.
        access_log=False,
    )


class Server(uvicorn.Server):
    """uvicorn's server, which skips the app's shutdown only at a second Ctrl-C, and answers the
    requests waiting for jobs (`?wait=`, event streams) as it starts to stop, not after them.

    uvicorn takes any SIGINT after a first stop signal for a second Ctrl-C; but at a Ctrl-C
    scripts/run sends the API a SIGTERM, which may be handled before the terminal's SIGINT.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        events = getattr(getattr(app, "state", None), "job_events", None)
        if isinstance(events, JobEvents):
            events.close()  # each waiting upload gets its job as it is (202), to follow elsewhere
        await super().shutdown(sockets)

    interrupted = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        forced = self.force_exit or (sig == signal.SIGINT and self.interrupted)
        self.interrupted = self.interrupted or sig == signal.SIGINT
        super().handle_exit(sig, frame)
        self.force_exit = forced
        if forced:
            # Quitting at once cancels the requests in flight and the app's lifespan: not errors.
            logging.getLogger("uvicorn.error").addFilter(not_cancelled)


def not_cancelled(record: logging.LogRecord) -> bool:
    """Whether a record is about something other than a task cancelled by a forced exit."""
    if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
        return False  # "Exception in ASGI application" for a request in flight
    return "asyncio.exceptions.CancelledError" not in record.getMessage()  # the lifespan's traceback


def serve(settings: Settings) -> None:
    """Serve until stopped."""
    # uvicorn takes over the stop signals as it starts and, once it has shut down, raises the
    # ones it caught again for the handlers it found: nothing is left to stop by then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Server(config(settings)).run()
