"""Where job files live: the one small interface (`Blobs`) and its local-folder backend.

The S3 backend is in `filestore.s3`, imported only when IMGPRESS_STORAGE_URL names a bucket.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from functools import cache
from pathlib import Path
from typing import Literal, Protocol

from shared import storage
from shared.errors import StorageFull
from shared.settings import Settings

#: Which of a job's two files: the upload or the compressed result.
Kind = Literal["input", "output"]
KINDS: tuple[Kind, ...] = ("input", "output")


class Readable(Protocol):
    """A stored file opened for reading: an open local file, or an object's body."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to `size` bytes (all that is left if negative); b"" at the end."""

    def close(self) -> None:
        """Release the file or the connection."""


class Blobs(Protocol):
    """A job's files, wherever they are kept. Every method may raise StorageFull or
    StorageUnavailable (`shared.errors`); a missing file is FileNotFoundError."""

    def publish(self, temp: Path, job_id: str, kind: Kind) -> None:
        """Store a finished local file as the job's input or output; the temp file is gone after."""

    def save(self, data: bytes, job_id: str, kind: Kind) -> None:
        """Store bytes held in memory (the worker's encoded output) as the job's input or output."""

    def duplicate(self, source_id: str, job_id: str, kind: Kind) -> None:
        """Store a job's file as another job's too (a variant's input), without the bytes passing
        through this process where the store can help it; each job may then be deleted first."""

    def local_copy(self, job_id: str, kind: Kind) -> AbstractContextManager[Path | bytes]:
        """The job's file's bytes on this host, for as long as the block runs: a file, or the bytes
        themselves when they came from elsewhere and are few (up to 1 MiB)."""

    def local_path(self, job_id: str, kind: Kind) -> Path | None:
        """The file itself when it sits on this host's disk (served with sendfile), else None."""

    def open(self, job_id: str, kind: Kind) -> tuple[Readable, int]:
        """The job's file opened for reading, and its size in bytes."""

    def link(self, job_id: str, kind: Kind, media_type: str, disposition: str) -> str | None:
        """A short-lived URL the client can fetch the file from directly, or None (the API sends it)."""

    def exists(self, job_id: str, kind: Kind) -> bool:
        """Whether the job's file is stored."""

    def delete(self, job_id: str) -> None:
        """Delete both files of a job; harmless if run twice."""

    def stale_jobs(self, cutoff: float) -> Iterator[str]:
        """Ids of jobs with a file last written before `cutoff` (epoch seconds), for the sweep."""

    def clean_partial(self, cutoff: float) -> int:
        """Delete this host's temp files last written before `cutoff`; how many."""


class LocalBlobs:
    """Job files in IMGPRESS_DATA_DIR (`shared.storage` paths): the default backend."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def _path(self, job_id: str, kind: Kind) -> Path:
        if kind == "input":
            return storage.input_path(self.data_dir, job_id)
        return storage.output_path(self.data_dir, job_id)

    def publish(self, temp: Path, job_id: str, kind: Kind) -> None:
        storage.move_into_place(temp, self._path(job_id, kind))

    def save(self, data: bytes, job_id: str, kind: Kind) -> None:
        temp = storage.temp_path(self.data_dir)
        try:
            with os.fdopen(storage.create_private(temp), "wb") as file:
                file.write(data)
            storage.move_into_place(temp, self._path(job_id, kind))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull() from None
            raise
        finally:
            temp.unlink(missing_ok=True)

    def duplicate(self, source_id: str, job_id: str, kind: Kind) -> None:
        source, temp = self._path(source_id, kind), storage.temp_path(self.data_dir)
        try:
            try:
                os.link(source, temp)
            except FileNotFoundError:
                raise  # the source's file is gone: nothing to copy either
            except OSError:  # a filesystem that cannot hard-link
                shutil.copyfile(source, temp)
            storage.move_into_place(temp, self._path(job_id, kind))
        finally:
            temp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def local_copy(self, job_id: str, kind: Kind) -> Iterator[Path | bytes]:
        yield self._path(job_id, kind)

    def local_path(self, job_id: str, kind: Kind) -> Path | None:
        return self._path(job_id, kind)

    def open(self, job_id: str, kind: Kind) -> tuple[Readable, int]:
        file = open(self._path(job_id, kind), "rb")  # noqa: SIM115 - the caller closes it
        return file, os.fstat(file.fileno()).st_size

    def link(self, job_id: str, kind: Kind, media_type: str, disposition: str) -> str | None:
        return None

    def exists(self, job_id: str, kind: Kind) -> bool:
        return self._path(job_id, kind).exists()

    def delete(self, job_id: str) -> None:
        storage.delete_job_files(self.data_dir, job_id)

    def stale_jobs(self, cutoff: float) -> Iterator[str]:
        for folder in stale_entries(storage.jobs_dir(self.data_dir), cutoff):
            if storage.is_job_id(folder.name):
                yield folder.name

    def clean_partial(self, cutoff: float) -> int:
        return clean_temp_files(self.data_dir, cutoff)


def stale_entries(folder: Path, cutoff: float) -> list[Path]:
    """Entries of `folder` last modified before `cutoff` (epoch seconds)."""
    stale = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            if entry.stat().st_mtime < cutoff:
                stale.append(entry)
        except FileNotFoundError:
            continue
    return stale


def clean_temp_files(data_dir: Path, cutoff: float) -> int:
    """Delete this host's temp files (tmp/*.part) last written before `cutoff`; how many."""
    stale = stale_entries(storage.tmp_dir(data_dir), cutoff)
    for part in stale:
        part.unlink(missing_ok=True)
    return len(stale)


@cache
def _store(data_dir: Path, storage_url: str, presign: bool) -> Blobs:
    # Temp files are written here by every process, a worker alone on its host too.
    storage.ensure_dirs(data_dir)
    if not storage_url:
        return LocalBlobs(data_dir)
    from filestore import s3  # obstore is the optional `s3` extra

    return s3.S3Blobs.from_url(storage_url, data_dir, presign)


# A forked worker makes its own store: a bucket client's connections and threads stay in the parent.
os.register_at_fork(after_in_child=_store.cache_clear)


def store_for(settings: Settings) -> Blobs:
    """The job-file store the settings name (one per process): IMGPRESS_STORAGE_URL, else the data dir."""
    return _store(settings.data_dir, settings.storage_url, settings.s3_presign)
