"""What the Python client raises, and the one place answers and httpx's errors are translated.

ImgpressError                     (shared.errors; catch this for "anything imgpress")
├── BadOption, UnsupportedMedia, TooLarge, CorruptImage, JobNotFound, JobExpired,
│   JobNotFinished, JobFailed, StorageFull, RequestTimeout, RateLimited (429,
│   `retry_after` seconds), ServiceUnavailable, QueueFull, Overloaded
│                                 the server's own errors, chosen by the body's `code`
├── Unauthorized                  401: no API key, or not a valid one
├── ServerError                   the server failed (`internal_error`, or any other 5xx)
├── UnexpectedResponse            an answer that is not imgpress's (unknown code, no error body)
└── ServerUnreachable             no answer at all: refused, DNS, reset, timed out
    └── RequestTimedOut           the server took longer than the client's timeout

`CODES` maps every code in `shared/errors.py` to its class; a test fails if one is missing.
`TRANSPORT` maps every httpx transport error; a test fails if httpx grows one it lacks.
"""

from __future__ import annotations

import email.utils
import time

import httpx

from shared import errors
from shared.errors import ImgpressError


class Unauthorized(ImgpressError):
    """Raised when the server requires an API key and none, or a wrong one, was sent."""

    code = "unauthorized"
    default_message = "A valid API key is required."


class ServerError(ImgpressError):
    """Raised when the server reports a failure of its own (500 `internal_error`, other 5xx)."""

    code = "internal_error"
    default_message = "The server failed to handle the request."


class UnexpectedResponse(ImgpressError):
    """Raised for an answer the client does not understand: not an imgpress error body or code."""

    code = "unexpected_response"
    default_message = "The server gave an answer the client does not understand."

    def __init__(self, message: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServerUnreachable(ImgpressError):
    """Raised when no answer came: connection refused, name not resolved, connection lost."""

    code = "server_unreachable"
    default_message = "The imgpress server cannot be reached."


class RequestTimedOut(ServerUnreachable):
    """Raised when the server did not answer within the client's timeout."""

    code = "timeout"
    default_message = "The imgpress server did not answer in time."


#: Every code the server sends, to the class the client raises for it.
CODES: dict[str, type[ImgpressError]] = {
    errors.BadOption.code: errors.BadOption,
    errors.UnsupportedMedia.code: errors.UnsupportedMedia,
    errors.TooLarge.code: errors.TooLarge,
    errors.CorruptImage.code: errors.CorruptImage,
    errors.CannotFit.code: errors.CannotFit,
    errors.JobNotFound.code: errors.JobNotFound,
    errors.JobExpired.code: errors.JobExpired,
    errors.JobNotFinished.code: errors.JobNotFinished,
    errors.JobFailed.code: errors.JobFailed,
    errors.StorageFull.code: errors.StorageFull,
    errors.RequestTimeout.code: errors.RequestTimeout,
    errors.RateLimited.code: errors.RateLimited,
    errors.ServiceUnavailable.code: errors.ServiceUnavailable,
    errors.QueueFull.code: errors.QueueFull,
    errors.Overloaded.code: errors.Overloaded,
    Unauthorized.code: Unauthorized,
    ServerError.code: ServerError,
}

#: httpx's transport errors (looked up along the MRO) to what the client raises.
TRANSPORT: dict[type[httpx.TransportError], type[ServerUnreachable]] = {
    httpx.TimeoutException: RequestTimedOut,
    httpx.NetworkError: ServerUnreachable,
    httpx.ProtocolError: ServerUnreachable,
    httpx.ProxyError: ServerUnreachable,
    httpx.UnsupportedProtocol: ServerUnreachable,
}


def error_for(code: str, message: str | None = None, retry_after: float | None = None) -> ImgpressError:
    """The exception for an error code (from an error body or a failed job)."""
    cls = CODES.get(code)
    if cls is None:
        return UnexpectedResponse(f"{code}: {message}" if message else code)
    if cls is errors.JobFailed:
        return errors.JobFailed(code, message or errors.JobFailed.default_message)
    if cls is errors.RateLimited:
        return errors.RateLimited(round(retry_after or 0), message)
    return cls(message)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asks the client to wait (Retry-After as seconds or an HTTP date)."""
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def from_response(response: httpx.Response) -> ImgpressError:
    """The exception for an error answer, from its `{"error": {"code", "message"}}` body."""
    try:
        body = response.json()
        code, message = body["error"]["code"], body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        code, message = None, None
    if response.status_code == 429:
        code = errors.RateLimited.code
    if isinstance(code, str) and code in CODES:
        return error_for(code, message if isinstance(message, str) else None, retry_after(response))
    text = message if isinstance(message, str) else response.reason_phrase
    if response.status_code >= 500:
        return ServerError(f"{response.status_code}: {text}")
    return UnexpectedResponse(f"{response.status_code}: {text}", status=response.status_code)


def from_transport(exc: httpx.TransportError) -> ServerUnreachable:
    """The exception for an httpx transport error, looked up along its class's MRO."""
    for cls in type(exc).__mro__:
        if cls in TRANSPORT:
            return TRANSPORT[cls](f"{TRANSPORT[cls].default_message} ({type(exc).__name__}: {exc})")
    return ServerUnreachable(f"{type(exc).__name__}: {exc}")
