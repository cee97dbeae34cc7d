"""Batches: several jobs uploaded together, one JSON record at `names.batch_key(id)` that lives
as long as its jobs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from shared import jobs, names, storage
from shared.errors import BatchExpired, BatchNotFound
from shared.schema import Job, JobError


@dataclass(frozen=True)
class Rejected:
    """A file of a batch upload that was refused before it became a job, and why."""

    filename: str
    error: JobError
    #: The file's position among the upload's files (0 is the first), to pair it with what was sent.
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "index": self.index,
            "filename": self.filename,
            "error": {"code": self.error.code, "message": self.error.message},
        }


@dataclass(frozen=True)
class Batch:
    """Jobs uploaded together with the same options."""

    id: str
    created_at: str
    job_ids: tuple[str, ...]
    rejected: tuple[Rejected, ...] = ()
    callback_url: str | None = None
    #: Digest of the API key that created the batch (None when keys are off); never shown.
    owner: str | None = field(default=None)
    #: Each job's file position in the upload, in `job_ids` order (empty in records older than it).
    job_indexes: tuple[int, ...] = ()

    def index_of(self, job_id: str) -> int | None:
        """The upload position of this job's file, if the record knows it."""
        if len(self.job_indexes) != len(self.job_ids) or job_id not in self.job_ids:
            return None
        return self.job_indexes[self.job_ids.index(job_id)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form, as stored in Redis."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "job_ids": list(self.job_ids),
            "rejected": [item.to_dict() for item in self.rejected],
            "callback_url": self.callback_url,
            "owner": self.owner,
            "job_indexes": list(self.job_indexes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Batch:
        """Inverse of to_dict()."""
        return cls(
            id=data["id"],
            created_at=data["created_at"],
            job_ids=tuple(data["job_ids"]),
            rejected=tuple(
                Rejected(r["filename"], JobError(**r["error"]), r.get("index")) for r in data["rejected"]
            ),
            callback_url=data.get("callback_url"),
            owner=data.get("owner"),
            job_indexes=tuple(data.get("job_indexes", ())),
        )


def save(connection: Redis, batch: Batch, retention_seconds: int, job_timeout_seconds: int) -> None:
    """Store a new batch, due to expire when a job that never ran would."""
    seconds = retention_seconds + job_timeout_seconds
    with connection.pipeline() as pipe:
        pipe.set(names.batch_key(batch.id), json.dumps(batch.to_dict()), ex=seconds)
        pipe.set(names.batch_gone_key(batch.id), "1", ex=names.GONE_SECONDS)
        pipe.execute()


#: Why a batch deleted with DELETE /v1/batches/{id} has no record.
DELETED = "This batch was deleted."


def load(connection: Redis, batch_id: str) -> Batch:
    """The batch with this id; BatchExpired if it was deleted, BatchNotFound if it never was."""
    raw = connection.get(names.batch_key(batch_id)) if storage.is_job_id(batch_id) else None
    if raw is None:
        gone = connection.get(names.batch_gone_key(batch_id)) if storage.is_job_id(batch_id) else None
        if gone is None:
            raise BatchNotFound()
        raise BatchExpired(DELETED) if gone == b"deleted" else BatchExpired()
    return Batch.from_dict(json.loads(raw))


def members(connection: Redis, batch: Batch) -> list[Job | None]:
    """The batch's jobs in upload order; None for one already deleted."""
    if not batch.job_ids:
        return []
    raws = connection.mget([names.job_key(job_id) for job_id in batch.job_ids])
    return [None if raw is None else jobs.parse(raw) for raw in raws]


def job_ended(connection: Redis, batch_id: str, expires_at_epoch: float) -> None:
    """Keep the batch's record until its job that just ended expires."""
    connection.expireat(names.batch_key(batch_id), int(expires_at_epoch) + 1)


def is_done(connection: Redis, batch: Batch) -> bool:
    """True once every job of the batch has finished, failed or been deleted."""
    return all(job is None or job.status.is_terminal for job in members(connection, batch))


def delete(connection: Redis, store: storage.JobFiles, batch: Batch) -> None:
    """Delete every job of the batch and its record now (DELETE); harmless if run twice."""
    for job_id in batch.job_ids:
        jobs.delete(connection, store, job_id, asked=True)
    with connection.pipeline() as pipe:
        pipe.delete(names.batch_key(batch.id))
        pipe.set(names.batch_gone_key(batch.id), "deleted", ex=names.GONE_SECONDS)
        pipe.execute()


def new_batch_id() -> str:
    """A fresh random batch id, shaped like a job id."""
    return storage.new_job_id()
