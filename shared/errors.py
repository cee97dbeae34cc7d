"""The imgpress error tree. It knows nothing of HTTP; `api/errors.py` maps it to statuses.

ImgpressError
├── BadOption            an option or parameter has an invalid value
├── UnsupportedMedia     the upload is not an allowed image type
├── TooLarge             too many bytes, pixels or frames
├── CorruptImage         the type is allowed but the file cannot be decoded
├── CannotFit            no output of the asked format fits in max_bytes
├── JobNotFound          no job has this id (or it is not yours)
│   └── BatchNotFound    no batch has this id (or it is not yours)
├── JobExpired           the job existed but its files and record were deleted
│   └── BatchExpired     the batch existed but was deleted
├── JobNotFinished       the job has no result yet
├── JobFailed            the job ended in failure; carries the job's own error
├── StorageFull          the data directory (or bucket) cannot take the upload
├── RequestTimeout       the upload's body came too slowly
└── ServiceUnavailable   Redis cannot be reached
    ├── QueueFull        too many jobs wait
    ├── Overloaded       the process serves as many requests as it may
    └── StorageUnavailable  the S3 bucket cannot be reached
"""

from __future__ import annotations


class ImgpressError(Exception):
    """Base of every error imgpress reports to a client."""

    code = "error"
    default_message = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        #: More for the client, beside code and message (a refused batch lists each file's refusal).
        self.details: dict[str, object] = {}
        super().__init__(self.message)


class BadOption(ImgpressError):
    """Raised when an option or query parameter has an invalid value."""

    code = "bad_option"
    default_message = "An option has an invalid value."


class UnsupportedMedia(ImgpressError):
    """Raised when an upload is not one of the allowed image types."""

    code = "unsupported_media"
    default_message = "This file type is not supported. Upload a JPEG, PNG, GIF, WebP, AVIF or HEIC image."


class TooLarge(ImgpressError):
    """Raised when an upload has too many bytes, pixels or frames."""

    code = "too_large"
    default_message = "The image is too large."


class CorruptImage(ImgpressError):
    """Raised when a file of an allowed type cannot be decoded."""

    code = "corrupt_image"
    default_message = "The image is corrupt or truncated and cannot be decoded."


class CannotFit(ImgpressError):
    """Raised when even the lowest quality of the asked format is larger than `max_bytes`."""

    code = "cannot_fit"
    default_message = "The image cannot be made small enough to fit in max_bytes."


class JobNotFound(ImgpressError):
    """Raised when no job has the requested id."""

    code = "not_found"
    default_message = "No job has this id."


class JobExpired(ImgpressError):
    """Raised when a job's files and record have been deleted (retention or DELETE)."""

    code = "gone"
    default_message = "This job's files were deleted after the retention period."


class BatchNotFound(JobNotFound):
    """Raised when no batch has the requested id."""

    default_message = "No batch has this id."


class BatchExpired(JobExpired):
    """Raised when a batch and its jobs have been deleted (retention or DELETE)."""

    default_message = "This batch and its files were deleted after the retention period."


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
    """Raised when the data directory or the bucket is full or cannot be written."""

    code = "insufficient_storage"
    default_message = "The server has no room to store this upload. Try again later."


class RequestTimeout(ImgpressError):
    """Raised when an upload's body pauses too long or arrives slower than IMGPRESS_MIN_UPLOAD_RATE."""

    code = "request_timeout"
    default_message = "The upload came too slowly; send it again on a faster connection."


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


class Overloaded(ServiceUnavailable):
    """Raised when an API process already serves IMGPRESS_MAX_CONNECTIONS requests."""

    code = "overloaded"
    default_message = "The server is busy. Try again shortly."


class StorageUnavailable(ServiceUnavailable):
    """Raised when the S3 bucket cannot be reached or refuses the service's requests."""

    default_message = "The service cannot reach its file storage. Try again shortly."
