"""What this server accepts, for clients to check before they upload: `GET /v1/limits`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.services import services
from screening.imaging import FORMATS
from shared import options
from shared.settings import Settings

#: Limits are settings: they change only when the server restarts, so a minute of caching is safe.
CACHE_CONTROL = "public, max-age=60"


def limits_resource(settings: Settings) -> dict[str, Any]:
    """The upload limits and option choices of a server with these settings."""
    return {
        "max_upload_bytes": settings.max_upload_bytes,
        "max_pixels": settings.max_pixels,
        "max_batch_files": settings.max_batch_files,
        "retention_seconds": settings.retention_seconds,
        "media_types": sorted(set(FORMATS.values())),
        "formats": list(options.FORMATS),
        "targets": list(options.TARGETS),
        "fits": list(options.FITS),
        "efforts": list(options.EFFORTS),
        "max_side": options.MAX_SIDE,
    }


async def get_limits(request: Request) -> Response:
    """GET /v1/limits: upload limits (bytes, pixels, types, files per batch) and how long results stay.

    Needs no API key: a page shows them before the user has typed one.
    """
    body = limits_resource(services(request).settings)
    return JSONResponse(body, headers={"Cache-Control": CACHE_CONTROL})
