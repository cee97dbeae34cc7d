"""The only map from imgpress errors (and Redis's) to HTTP statuses, and the handlers that use it."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared import errors

log = logging.getLogger(__name__)

STATUS: dict[type[errors.ImgpressError], int] = {
    errors.BadOption: 400,
    errors.JobNotFound: 404,
    errors.JobNotFinished: 409,
    errors.JobExpired: 410,
    errors.TooLarge: 413,
    errors.UnsupportedMedia: 415,
    errors.CorruptImage: 422,
    errors.CannotFit: 422,
    errors.JobFailed: 422,
    errors.StorageFull: 507,
    errors.RequestTimeout: 408,
    errors.RateLimited: 429,
    errors.ServiceUnavailable: 503,
}
#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_SECONDS = 5

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 401: "unauthorized"}


def status_for(error: errors.ImgpressError) -> int:
    """The HTTP status for an imgpress error, looked up along its class's MRO."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def translate(exc: Exception) -> errors.ImgpressError:
    """Turn any exception an endpoint lets out into an imgpress error."""
    if isinstance(exc, errors.ImgpressError):
        return exc
    if isinstance(exc, RedisError):
        log.warning("redis unavailable: %s", exc)
        return errors.ServiceUnavailable()
    log.exception("unhandled error", exc_info=exc)
    error = errors.ImgpressError("Internal error.")
    error.code = "internal_error"
    return error


def headers_for(error: errors.ImgpressError) -> dict[str, str]:
    """Extra response headers an error calls for."""
    if isinstance(error, errors.Overloaded):
        return {"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"}
    if isinstance(error, errors.ServiceUnavailable):
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if isinstance(error, errors.RateLimited):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, errors.RequestTimeout):
        # The rest of the body is never read: the connection cannot carry another request.
        return {"Connection": "close"}
    return {}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message}}


#: The `error` of every error body on the original app's routes (api/seed.py).
ENVELOPE_ERROR = "An error occurred"


def envelope_error_body(message: str, code: int) -> dict[str, str | int]:
    """The body of every error on the original app's routes: its `error`, a message, a status as `code`."""
    return {"error": ENVELOPE_ERROR, "message": message, "code": code}


async def imgpress_error(request: Request, exc: Exception) -> Response:
    """Render an imgpress error (or a Redis failure, or a bug) as a JSON error response."""
    error = translate(exc)
    body: dict[str, dict[str, object]] = {"error": {**error_body(error.code, error.message)["error"]}}
    body["error"].update(error.details)  # e.g. each file's refusal when a whole batch is refused
    return JSONResponse(body, status_code=status_for(error), headers=headers_for(error))


async def http_error(request: Request, exc: Exception) -> Response:
    """Render Starlette's own errors (unknown route, wrong method) in the same JSON shape."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


EXCEPTION_HANDLERS = {
    errors.ImgpressError: imgpress_error,
    RedisError: imgpress_error,
    HTTPException: http_error,
    Exception: imgpress_error,
}
