"""The imgpress error tree. It knows nothing of HTTP; `api/errors.py` maps it to statuses.

ImgpressError
├── BadOption            an option or parameter has an invalid value
├── UnsupportedMedia     the upload is not an allowed image type
├── TooLarge             too many bytes, pixels or frames
├── CorruptImage         the type is allowed but the file cannot be decoded
├── JobNotFound          no job has this id (or it is not yours)
├── JobExpired           the job existed but its files and record were deleted
├── JobNotFinished       the job has no result yet
├── JobFailed            the job ended in failure; carries the job's own error
├── StorageFull          the data directory cannot take the upload
└── ServiceUnavailable   Redis cannot be reached
"""

from __future__ import annotations


class ImgpressError(Exception):
    """Base of every error imgpress reports to a client."""

    code = "error"
    default_message = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BadOption(ImgpressError):
    """Raised when an option or query parameter has an invalid value."""

    code = "bad_option"
    default_message = "An option has an invalid value."


class UnsupportedMedia(ImgpressError):
    """Raised when an upload is not one of the allowed image types."""

    code = "unsupported_media"
    default_message = "This file type is not supported. Upload a JPEG, PNG, GIF or WebP image."


class TooLarge(ImgpressError):
    """Raised when an upload has too many bytes, pixels or frames."""

    code = "too_large"
    default_message = "The image is too large."


class CorruptImage(ImgpressError):
    """Raised when a file of an allowed type cannot be decoded."""

    code = "corrupt_image"
    default_message = "The image is corrupt or truncated and cannot be decoded."


class JobNotFound(ImgpressError):
    """Raised when no job has the requested id."""

    code = "not_found"
    default_message = "No job has this id."


class JobExpired(ImgpressError):
    """Raised when a job's files and record have been deleted (retention or DELETE)."""

    code = "gone"
    default_message = "This job's files were deleted after the retention period."


class JobNotFinished(ImgpressError):
    """Raised when a job's result is asked for before the job has finished."""

    code = "not_finished"
    default_message = "The job has not finished yet."


class JobFailed(ImgpressError):
    """Raised when a failed job's result is asked for; carries the job's own error."""

    code = "job_failed"
    default_message = "The job failed."

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StorageFull(ImgpressError):
    """Raised when the data directory is full or cannot be written."""

    code = "insufficient_storage"
    default_message = "The server has no room to store this upload. Try again later."


class RateLimited(ImgpressError):
    """Raised when a key (or client address) has used up its uploads for the current period."""

    code = "rate_limited"
    default_message = "Too many uploads. Try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message or f"Too many uploads; try again in {retry_after} seconds.")
        self.retry_after = retry_after


class ServiceUnavailable(ImgpressError):
    """Raised when Redis cannot be reached."""

    code = "service_unavailable"
    default_message = "The service is temporarily unavailable. Try again shortly."


class QueueFull(ServiceUnavailable):
    """Raised when IMGPRESS_MAX_QUEUED jobs are already waiting."""

    code = "queue_full"
    default_message = "Too many images are waiting to be compressed. Try again shortly."
