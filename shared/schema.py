"""The job contract: one frozen dataclass stored as JSON in Redis and shown to clients."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.options import Options

#: Properties of Job that to_dict() adds for clients; from_dict() ignores them.
DERIVED = ("saved_bytes", "saved_ratio")
#: Fields of Job that are dataclasses of their own (of JSON scalars), nested in to_dict().
PARTS = ("input", "options", "output", "error")


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    #: Uploaded and waiting in the queue for a worker.
    QUEUED = "queued"
    #: A worker is compressing it.
    STARTED = "started"
    #: Compressed; the result can be downloaded until the job expires.
    FINISHED = "finished"
    #: Compression was refused or went wrong; `error` says why.
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """True once the job will not change again (apart from being deleted)."""
        return self in (JobStatus.FINISHED, JobStatus.FAILED)


def utc_now() -> str:
    """The current time as an ISO 8601 UTC timestamp, the form every job time is kept in."""
    return to_timestamp(datetime.now(UTC))


def to_timestamp(moment: datetime) -> str:
    """Format an aware datetime as an ISO 8601 UTC timestamp with millisecond precision."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_timestamp(text: str) -> datetime:
    """Parse a timestamp made by to_timestamp()."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class InputInfo:
    """What the client uploaded."""

    filename: str
    media_type: str
    bytes: int
    width: int
    height: int


@dataclass(frozen=True)
class OutputInfo:
    """What the worker produced."""

    media_type: str
    bytes: int
    width: int
    height: int
    #: The quality actually used (1-100; 100 = lossless PNG/WebP); None when the input was kept as is.
    quality: int | None = None
    #: The output format's option name (jpeg, png, webp, avif, gif).
    format: str | None = None


class JobFailure(enum.StrEnum):
    """Codes of a failed job's error that no exception in `shared.errors` carries: the worker's own.

    A failed job's code is one of these or the code of one of those exceptions; the client
    keeps a class for every one (tests/client/test_client.py).
    """

    #: The image took longer than IMGPRESS_JOB_TIMEOUT_SECONDS to process.
    TIMEOUT = "timeout"
    #: The worker processing it stopped (killed, out of memory) before it recorded an end.
    WORKER_LOST = "worker_lost"
    #: Compressing it raised an exception imgpress does not expect (a bug; it is logged).
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a stable code and a short message for humans."""

    code: str
    message: str


def owner_of(key: str) -> str:
    """The digest a job or batch record keeps to say which API key created it (never the key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Job:
    """A compression job, as stored in Redis and (with links) shown to clients."""

    id: str
    status: JobStatus
    created_at: str
    input: InputInfo
    options: Options
    started_at: str | None = None
    finished_at: str | None = None
    expires_at: str | None = None
    output: OutputInfo | None = None
    error: JobError | None = None
    #: Digest of the API key that created the job (None when keys are off); never shown.
    owner: str | None = None
    #: The batch this job was uploaded in, if any.
    batch_id: str | None = None
    #: Where to POST the job resource once it ends (a webhook), if anywhere.
    callback_url: str | None = None

    @property
    def saved_bytes(self) -> int | None:
        """Bytes saved by compression, once finished."""
        return None if self.output is None else self.input.bytes - self.output.bytes

    @property
    def saved_ratio(self) -> float | None:
        """Fraction of the input saved (0.25 means a quarter smaller), once finished."""
        if self.output is None or self.input.bytes == 0:
            return None
        return round((self.input.bytes - self.output.bytes) / self.input.bytes, 4)

    def started(self) -> Job:
        """This job, marked as picked up by a worker now."""
        return replace(self, status=JobStatus.STARTED, started_at=utc_now())

    def finished(self, output: OutputInfo, expires_at: str) -> Job:
        """This job, marked as finished now with its output."""
        return replace(
            self, status=JobStatus.FINISHED, finished_at=utc_now(), output=output, expires_at=expires_at
        )

    def failed(self, error: JobError, expires_at: str) -> Job:
        """This job, marked as failed now with its error."""
        return replace(
            self, status=JobStatus.FAILED, finished_at=utc_now(), error=error, expires_at=expires_at
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; the stored form and the base of the client resource.

        Built from the fields directly: dataclasses.asdict's deep copies were a tenth of a
        worker's CPU per job outside the encode. The parts hold JSON scalars only.
        """
        data = dict(vars(self))
        for name in PARTS:
            if data[name] is not None:
                data[name] = dict(vars(data[name]))
        data["status"] = self.status.value
        for name in DERIVED:
            data[name] = getattr(self, name)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Inverse of to_dict(); ignores the derived fields."""
        return cls(
            id=data["id"],
            status=JobStatus(data["status"]),
            created_at=data["created_at"],
            input=InputInfo(**data["input"]),
            options=Options.from_dict(data["options"]),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            expires_at=data.get("expires_at"),
            output=OutputInfo(**data["output"]) if data.get("output") else None,
            error=JobError(**data["error"]) if data.get("error") else None,
            owner=data.get("owner"),
            batch_id=data.get("batch_id"),
            callback_url=data.get("callback_url"),
        )
