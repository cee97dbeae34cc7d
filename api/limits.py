"""Limits the app keeps itself: how many requests one process serves at once, and how slowly an
upload's body may arrive. The header deadline and the connection cap are in api/server.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_body, headers_for
from shared.errors import Overloaded, RequestTimeout
from shared.settings import Settings

#: Cheap answers that must keep working when the process is full: probes and metrics.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestBudget:
    """Answer 503 + Retry-After, before reading anything, once `limit` requests are in flight.

    A stream already started is never cut: only new requests are turned away.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await refuse(send, Overloaded())
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def refuse(send: Send, error: Overloaded) -> None:
    """Send the 503 of an over-budget request (the app, and its error handlers, never see it)."""
    body = json.dumps(error_body(error.code, error.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in headers_for(error).items()]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def paced(chunks: AsyncIterator[bytes], settings: Settings) -> AsyncIterator[bytes]:
    """The body's chunks, or RequestTimeout once it pauses or falls below the minimum rate.

    Each chunk must come within IMGPRESS_BODY_TIMEOUT_SECONDS, and past that first allowance the
    body must average IMGPRESS_MIN_UPLOAD_RATE bytes a second, so a client dripping a byte now
    and then cannot hold a connection and a temp file for long.
    """
    started = time.monotonic()
    received = 0
    iterator = aiter(chunks)
    while True:
        allowed = settings.body_timeout_seconds + received / settings.min_upload_rate
        remaining = min(settings.body_timeout_seconds, started + allowed - time.monotonic())
        try:
            async with asyncio.timeout(max(remaining, 0)):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout() from None
        received += len(chunk)
        yield chunk
