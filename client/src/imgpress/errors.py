"""What the client raises: one class per error code the server sends, and the client's own.

ImgpressError                     catch this for "anything imgpress"
├── BadOption                     a bad option value (from the server or checked before upload)
│   └── UnknownOption             an option name the API does not have (also a TypeError)
├── UnsupportedMedia, TooLarge, CorruptImage, CannotFit, JobNotFound, JobExpired,
│   JobNotFinished, JobFailed, StorageFull, RequestTimeout, RateLimited
├── JobTimedOut, WorkerLost      a job that ran too long, or whose worker stopped
├── ServiceUnavailable            (QueueFull, Overloaded)
├── Unauthorized                  no API key, or a wrong one
├── ServerError                   500 or another 5xx
├── UnexpectedResponse            an answer that is not imgpress's (unknown code, no error body)
├── FileUnreadable                a local file could not be read (missing, a folder, no permission)
└── ServerUnreachable             no answer at all: refused, DNS, reset
    └── RequestTimedOut           the server took longer than the client's timeout
"""

from __future__ import annotations

import email.utils
import time

import httpx


class ImgpressError(Exception):
    """Base of every error the client raises; `code` is the server's error code."""

    code = "error"
    default_message = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BadOption(ImgpressError):
    """An option or parameter has an invalid value."""

    code = "bad_option"
    default_message = "An option has an invalid value."


class UnknownOption(BadOption, TypeError):
    """An option name the API does not have (a typo such as `qualty`)."""

    def __init__(self, name: str) -> None:
        from imgpress.models import OPTION_NAMES

        super().__init__(f"Unknown option '{name}'; the options are {', '.join(OPTION_NAMES)}.")
        self.name = name


class UnsupportedMedia(ImgpressError):
    """The upload is not an allowed image type."""

    code = "unsupported_media"
    default_message = "This file type is not supported."


class TooLarge(ImgpressError):
    """The upload has too many bytes, pixels or frames."""

    code = "too_large"
    default_message = "The image is too large."


class CorruptImage(ImgpressError):
    """The type is allowed but the file cannot be decoded."""

    code = "corrupt_image"
    default_message = "The image is corrupt or truncated and cannot be decoded."


class CannotFit(ImgpressError):
    """No output of the asked format fits in max_bytes."""

    code = "cannot_fit"
    default_message = "The image cannot be made small enough to fit in max_bytes."


class JobNotFound(ImgpressError):
    """No job (or batch) has this id, or it is not yours."""

    code = "not_found"
    default_message = "No job has this id."


class JobExpired(ImgpressError):
    """The job (or batch) existed but was deleted."""

    code = "gone"
    default_message = "This job's files were deleted."


class JobNotFinished(ImgpressError):
    """The job has no result yet."""

    code = "not_finished"
    default_message = "The job has not finished yet."


class JobFailed(ImgpressError):
    """The job ended in failure; `code` is the job's own error code."""

    code = "job_failed"
    default_message = "The job failed."

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class JobTimedOut(ImgpressError):
    """The job took longer than the server allows for one image (IMGPRESS_JOB_TIMEOUT_SECONDS)."""

    code = "timeout"
    default_message = "The image took too long to process."


class WorkerLost(ImgpressError):
    """The worker compressing the job stopped before it ended (killed, out of memory); send it again."""

    code = "worker_lost"
    default_message = "The worker processing this image stopped unexpectedly."


class StorageFull(ImgpressError):
    """The server has no room for the upload."""

    code = "insufficient_storage"
    default_message = "The server has no room to store this upload."


class RequestTimeout(ImgpressError):
    """The upload's body came too slowly for the server."""

    code = "request_timeout"
    default_message = "The upload came too slowly."


class RateLimited(ImgpressError):
    """The key (or address) has used up its uploads for now; `retry_after` in seconds."""

    code = "rate_limited"
    default_message = "Too many uploads. Try again later."

    def __init__(self, retry_after: float = 0, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(ImgpressError):
    """The server cannot reach its Redis."""

    code = "service_unavailable"
    default_message = "The service is temporarily unavailable."


class QueueFull(ServiceUnavailable):
    """Too many jobs wait."""

    code = "queue_full"
    default_message = "Too many images are waiting to be compressed."


class Overloaded(ServiceUnavailable):
    """The API process serves as many requests as it may."""

    code = "overloaded"
    default_message = "The server is busy."


class Unauthorized(ImgpressError):
    """The server requires an API key and none, or a wrong one, was sent."""

    code = "unauthorized"
    default_message = "A valid API key is required."


class ServerError(ImgpressError):
    """The server reports a failure of its own (500 `internal_error`, other 5xx)."""

    code = "internal_error"
    default_message = "The server failed to handle the request."


class UnexpectedResponse(ImgpressError):
    """An answer the client does not understand: not an imgpress error body or code."""

    code = "unexpected_response"
    default_message = "The server gave an answer the client does not understand."

    def __init__(self, message: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FileUnreadable(ImgpressError):
    """A local file to upload could not be read."""

    code = "file_error"
    default_message = "The file cannot be read."


class ServerUnreachable(ImgpressError):
    """No answer came: connection refused, name not resolved, connection lost."""

    code = "server_unreachable"
    default_message = "The imgpress server cannot be reached."


class RequestTimedOut(ServerUnreachable):
    """The server did not answer within the client's timeout."""

    # Not `timeout`: that is a job's code, for an image that took the server too long (JobTimedOut).
    code = "client_timeout"
    default_message = "The imgpress server did not answer in time."


#: Every code the server sends (in an error body or a failed job), to the class the client raises.
CODES: dict[str, type[ImgpressError]] = {
    cls.code: cls
    for cls in (
        BadOption,
        UnsupportedMedia,
        TooLarge,
        CorruptImage,
        CannotFit,
        JobNotFound,
        JobExpired,
        JobNotFinished,
        JobFailed,
        JobTimedOut,
        WorkerLost,
        StorageFull,
        RequestTimeout,
        RateLimited,
        ServiceUnavailable,
        QueueFull,
        Overloaded,
        Unauthorized,
        ServerError,
    )
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
    if cls is JobFailed:
        return JobFailed(code, message or JobFailed.default_message)
    if cls is RateLimited:
        return RateLimited(retry_after or 0, message)
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


def error_body(response: httpx.Response) -> tuple[str | None, str | None]:
    """The code and message of an imgpress error body, or Nones if the answer has none."""
    try:
        body = response.json()
        code, message = body["error"]["code"], body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None, None
    return (code if isinstance(code, str) else None), (message if isinstance(message, str) else None)


def from_response(response: httpx.Response) -> ImgpressError:
    """The exception for an error answer, from its `{"error": {"code", "message"}}` body."""
    code, message = error_body(response)
    if response.status_code == 429:
        code = RateLimited.code
    if code is not None and code in CODES:
        return error_for(code, message, retry_after(response))
    text = message or response.reason_phrase
    if response.status_code >= 500:
        return ServerError(f"{response.status_code}: {text}")
    return UnexpectedResponse(f"{response.status_code}: {text}", status=response.status_code)


def from_transport(exc: httpx.TransportError) -> ServerUnreachable:
    """The exception for an httpx transport error, looked up along its class's MRO."""
    for cls in type(exc).__mro__:
        if cls in TRANSPORT:
            return TRANSPORT[cls](f"{TRANSPORT[cls].default_message} ({type(exc).__name__}: {exc})")
    return ServerUnreachable(f"{type(exc).__name__}: {exc}")
