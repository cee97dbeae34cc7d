"""The web page at `/`: plain HTML, CSS and JavaScript modules under api/static, no build step."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

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


async def index(request: Request) -> Response:
    """GET /: the page."""
    return FileResponse(STATIC_DIR / "index.html", headers=SECURITY_HEADERS)


def static_files() -> StaticFiles:
    """The page's CSS and JavaScript, served under /static."""
    return StaticFiles(directory=STATIC_DIR)
