"""Where imgpress keeps files: paths from pure functions (user file names never become paths),
`{data_dir}/jobs/{id}/input|output` and `{data_dir}/tmp/*.part`; written under tmp/ and
moved into place, folders 0700 and files 0600."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Protocol

_JOB_ID = re.compile(r"[0-9a-f]{32}")


class JobFiles(Protocol):
    """What the contract needs of the store that holds job files (`filestore.blobs.Blobs`)."""

    def delete(self, job_id: str) -> None:
        """Delete a job's files; harmless if run twice."""


def new_job_id() -> str:
    """A fresh random job id: 32 lowercase hex digits (128 random bits)."""
    return secrets.token_hex(16)


def is_job_id(text: str) -> bool:
    """True if text has the shape of a job id, so it is safe to put in a path."""
    return _JOB_ID.fullmatch(text) is not None


def jobs_dir(data_dir: Path) -> Path:
    """The folder holding one sub-folder per job."""
    return data_dir / "jobs"


def tmp_dir(data_dir: Path) -> Path:
    """The folder for files still being written."""
    return data_dir / "tmp"


def job_dir(data_dir: Path, job_id: str) -> Path:
    """The folder of one job; raises ValueError for anything that is not a job id."""
    if not is_job_id(job_id):
        raise ValueError("not a job id")
    return jobs_dir(data_dir) / job_id


def input_path(data_dir: Path, job_id: str) -> Path:
    """Where a job's upload is kept."""
    return job_dir(data_dir, job_id) / "input"


def output_path(data_dir: Path, job_id: str) -> Path:
    """Where a job's compressed result is kept."""
    return job_dir(data_dir, job_id) / "output"


def temp_path(data_dir: Path) -> Path:
    """A fresh, unused name under tmp/ for a file being written."""
    return tmp_dir(data_dir) / f"{secrets.token_hex(12)}.part"


FOLDER_MODE = 0o700
FILE_MODE = 0o600


def ensure_dirs(data_dir: Path) -> None:
    """Create the data folders if they are missing, and make them private if they are not."""
    for folder in (data_dir, jobs_dir(data_dir), tmp_dir(data_dir)):
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        folder.chmod(FOLDER_MODE)


def create_private(path: Path) -> int:
    """Open a new file for writing, readable by this user only; its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)


def move_into_place(temp: Path, final: Path) -> None:
    """Atomically publish a finished temp file at its final path, readable by this user only."""
    final.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    os.chmod(temp, FILE_MODE)
    os.replace(temp, final)


def delete_input(data_dir: Path, job_id: str) -> None:
    """Delete a job's upload; harmless if it is already gone."""
    input_path(data_dir, job_id).unlink(missing_ok=True)


def delete_job_files(data_dir: Path, job_id: str) -> None:
    """Delete every file of a job and its folder; harmless if run twice."""
    folder = job_dir(data_dir, job_id)
    if not folder.exists():
        return
    for child in folder.iterdir():
        child.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except FileNotFoundError:
        pass
