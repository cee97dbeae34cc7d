"""Writing an output: atomically, with its input's mode and times, as --overwrite allows."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import tempfile
from pathlib import Path

from imgpress.plan import Task


def file_mode(task: Task, umask: int) -> int:
    """The permission bits an output gets: its input's, or what a new file gets for stdin."""
    if task.source is not None:
        with contextlib.suppress(OSError):
            return stat.S_IMODE(task.source.stat().st_mode)
    return 0o666 & ~umask


class Existing(Exception):
    """Raised when an output is not written because of the --overwrite policy; says why."""


def write_output(task: Task, destination: Path, data: bytes, args: argparse.Namespace, umask: int) -> None:
    """Write an output atomically with its input's mode (and times), as --overwrite allows."""
    if destination.exists():
        if args.overwrite == "never":
            raise Existing("output exists (--overwrite always or if-smaller replaces it)")
        if args.overwrite == "if-smaller" and len(data) >= destination.stat().st_size:
            raise Existing("the existing output is as small or smaller")
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=destination.parent, prefix=".imgpress-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            os.fchmod(file.fileno(), file_mode(task, umask))
        if args.keep_dates and task.source is not None:
            found = task.source.stat()
            os.utime(temp, ns=(found.st_atime_ns, found.st_mtime_ns))
        if args.overwrite == "never":
            try:
                os.link(temp, destination)  # fails if the file appeared meanwhile: never clobber
            except FileExistsError:
                raise Existing("output exists (--overwrite always or if-smaller replaces it)") from None
        else:
            os.replace(temp, destination)
    finally:
        Path(temp).unlink(missing_ok=True)
