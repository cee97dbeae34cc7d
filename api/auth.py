"""Optional API keys (IMGPRESS_API_KEYS): the check at the door (401) and who owns a job (the
record keeps a digest of its key; other keys get 404)."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import envelope_error_body, error_body
from shared.schema import owner_of
from shared.settings import Settings

#: Paths that need a key when keys are configured.
PROTECTED_PREFIXES = ("/v1/", "/upload", "/task/", "/download/")
SEED_PREFIXES = ("/upload", "/task/", "/download/")
#: Paths under a protected prefix that any client may read: what the server accepts.
PUBLIC_PATHS = frozenset({"/v1/limits"})


def caller(request: Request) -> str | None:
    """The owner digest of the request's key, or None when keys are off."""
    found: str | None = request.scope.get("imgpress.owner")
    return found


def client_address(request: Request) -> str:
    """Who to count an upload against when keys are off: the peer's address, or the client's
    from X-Forwarded-For when the peer is a trusted proxy (api/server.py).

    Anything that is not an IP address counts as one caller, "unknown", so junk in a forwarded
    header can neither make Redis keys nor a fresh allowance; an IPv6 address counts as its /64.
    """
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped.compressed
        # One site holds a whole /64 and could rotate through it: it counts as one caller.
        return ipaddress.ip_network(f"{address}/64", strict=False).compressed
    return address.compressed


def is_protected(path: str) -> bool:
    """Whether a path needs a key when keys are configured."""
    return path.startswith(PROTECTED_PREFIXES) and path not in PUBLIC_PATHS


class ApiKeyMiddleware:
    """Refuse protected routes without a valid bearer key; remember the caller's digest."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.keys = [key.encode() for key in settings.api_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or not is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = token.strip().encode()
        valid = scheme.lower() == "bearer" and any(hmac.compare_digest(presented, key) for key in self.keys)
        if not valid:
            message = "A valid API key is required: send 'Authorization: Bearer <key>'."
            body: object = error_body("unauthorized", message)
            if scope["path"].startswith(SEED_PREFIXES):
                body = envelope_error_body(message, 401)
            response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        scope["imgpress.owner"] = owner_of(presented.decode())
        await self.app(scope, receive, send)
