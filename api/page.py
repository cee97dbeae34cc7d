"""The web page at `/`: plain HTML, CSS and JavaScript modules under api/static, no build step."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Same-origin scripts, styles and API calls only; images may be blob: URLs of the user's files.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: The files keep their names from release to release (no build step adds a hash), so a browser
#: keeps them but asks each time whether they changed: a 304 for the ETag it holds.
CACHE_CONTROL = "no-cache"
#: The icon changes rarely; a day is long enough to spare the request and short enough to update.
ICON_CACHE_CONTROL = "public, max-age=86400"


class _StaticFiles(StaticFiles):
    """StaticFiles with the page's cache and security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = ICON_CACHE_CONTROL if path.endswith(".svg") else CACHE_CONTROL
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def index(request: Request) -> Response:
    """GET /: the page."""
    return FileResponse(
        STATIC_DIR / "index.html", headers={**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL}
    )


async def favicon(request: Request) -> Response:
    """GET /favicon.ico: the page's icon (SVG), for browsers that ask for it by this name."""
    return FileResponse(
        STATIC_DIR / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": ICON_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"},
    )


def static_files() -> StaticFiles:
    """The page's CSS, JavaScript and icon, served under /static."""
    return _StaticFiles(directory=STATIC_DIR)
