"""Planning a run before anything is sent: every input, where its output goes, collisions, skips."""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imgpress.report import FileOutcome

#: File name extensions of every type the server accepts, by the media type it sniffs (an MPO
#: is a JPEG with more pictures; GET /v1/limits lists the types, APNG and HEIF as PNG and HEIC).
ACCEPTED_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg", ".jpe", ".jfif", ".mpo"),
    "image/png": (".png",),
    "image/apng": (".apng",),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "image/avif": (".avif",),
    "image/heic": (".heic",),
    "image/heif": (".heif",),
}
#: File name extensions of images: the part of a name an output's extension replaces.
IMAGE_SUFFIXES = frozenset(suffix for suffixes in ACCEPTED_EXTENSIONS.values() for suffix in suffixes)
#: The files a folder gives when --include is not given: every type the server accepts.
DEFAULT_INCLUDE = [f"*{suffix}" for suffixes in ACCEPTED_EXTENSIONS.values() for suffix in suffixes]
#: The extension of each output format the server writes.
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp", "avif": ".avif"}
STDIN = "-"


#: Why a file in a folder is ignored: its name matches no --include pattern (by default: it has
#: no extension of a type the server accepts).
NOT_INCLUDED = "not matching --include"
#: Why a file in a folder is ignored: its name ends in --suffix, like the outputs of a run.
AN_OUTPUT = "named like an output (--suffix)"


class UsageError(Exception):
    """Raised when the command line asks for something impossible (exit code 2)."""


@dataclass
class Task:
    """One input and where its output goes (destination None: standard output)."""

    source: Path | None
    label: str
    #: The output's path without its extension, when the extension waits for the server's answer.
    destination: Path | None
    #: True when `destination` already has the output's extension.
    extension_known: bool = True
    data: bytes | None = None
    outcome: FileOutcome = field(default_factory=lambda: FileOutcome(""))

    def final_destination(self, filename: str) -> Path | None:
        """Where the output goes, once the server has named it (its extension)."""
        if self.destination is None or self.extension_known:
            return self.destination
        return self.destination.with_name(self.destination.name + Path(filename).suffix.lower())


def sniffed_format(head: bytes) -> str | None:
    """The image format `format=same` gives a file starting with these bytes (HEIC becomes JPEG)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"):
            return "jpeg"
    return None


def output_extension(format_option: str | None, head: bytes) -> str | None:
    """The output's extension, if it can be known before the server answers."""
    if format_option in EXTENSIONS:
        return EXTENSIONS[format_option]
    if format_option in (None, "same"):
        found = sniffed_format(head)
        return EXTENSIONS[found] if found else None
    return None  # auto: the server picks


def stem_of(name: str) -> str:
    """A file name without its image extension (a name without one is kept whole)."""
    path = Path(name)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else name


def ignore_reason(path: Path, patterns: Sequence[str], suffix: str) -> str | None:
    """Why a file found in a folder is not compressed (not included, or one of our outputs), if so."""
    if not any(fnmatch.fnmatch(path.name.lower(), p.lower()) for p in patterns):
        return NOT_INCLUDED
    if suffix and stem_of(path.name).endswith(suffix):
        return AN_OUTPUT
    return None


def read_head(path: Path) -> bytes:
    """The first bytes of a file (empty if it cannot be read: the upload then reports why)."""
    try:
        with path.open("rb") as file:
            return file.read(16)
    except OSError:
        return b""


def destination_for(name: str, folder: Path, extension: str | None, suffix: str) -> tuple[Path, bool]:
    """The output path for an input name in a folder, and whether its extension is known."""
    return folder / f"{stem_of(name)}{suffix}{extension or ''}", extension is not None


@dataclass
class Plan:
    """A run's inputs with their destinations, and the files in its folders it leaves alone."""

    tasks: list[Task]
    #: Each file found in a folder and not compressed, with why (NOT_INCLUDED or AN_OUTPUT).
    ignored: dict[str, str] = field(default_factory=dict)


def plan(args: argparse.Namespace, format_option: str | None) -> Plan:
    """Every input named on the command line, with its destination; UsageError if one is missing."""
    tasks: list[Task] = []
    ignored: dict[str, str] = {}
    patterns = args.include or DEFAULT_INCLUDE
    out: Path | None = args.out
    for raw in args.paths:
        if raw == STDIN:
            if any(task.source is None for task in tasks):
                raise UsageError("'-' can be given once")
            data = sys.stdin.buffer.read()
            extension = output_extension(format_option, data[:16])
            task = Task(None, STDIN, None, data=data)
            if out is not None:
                task.destination, task.extension_known = destination_for("stdin", out, extension, args.suffix)
            tasks.append(task)
            continue
        path = Path(raw)
        if path.is_dir():
            found = []
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                reason = ignore_reason(file, patterns, args.suffix)
                if reason is None:
                    found.append(file)
                else:
                    ignored[str(file)] = reason
            for file in found:
                folder = file.parent if out is None else out / file.parent.relative_to(path)
                extension = output_extension(format_option, read_head(file))
                tasks.append(
                    Task(file, str(file), *destination_for(file.name, folder, extension, args.suffix))
                )
        elif path.exists():
            folder = path.parent if out is None else out
            extension = output_extension(format_option, read_head(path))
            tasks.append(Task(path, str(path), *destination_for(path.name, folder, extension, args.suffix)))
        else:
            raise UsageError(f"no such file or folder: {raw}")
    if not tasks:
        raise UsageError("no files to compress (check --include)")
    return Plan(tasks, ignored)


def path_key(path: Path) -> str:
    """A path as a case- and normalisation-insensitive file system would see it."""
    return unicodedata.normalize("NFC", os.path.abspath(path)).casefold()


def find_collisions(tasks: list[Task]) -> dict[int, str]:
    """Tasks whose output another task would also write (or that is another input): index -> why.

    Outputs are compared as a case-insensitive file system would; an output whose extension the
    server picks (`--format auto`) collides with any output of the same name.
    """
    problems: dict[int, str] = {}
    inputs = {path_key(task.source): index for index, task in enumerate(tasks) if task.source is not None}
    by_stem: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        if task.destination is None:
            continue
        if task.extension_known:
            other = inputs.get(path_key(task.destination))
            if other is not None and other != index:
                problems[index] = (
                    f"its output {task.destination} would replace the input {tasks[other].label}"
                )
        stem = task.destination.with_suffix("") if task.extension_known else task.destination
        by_stem.setdefault(path_key(stem), []).append(index)
    for group in by_stem.values():
        for index in group:
            task = tasks[index]
            clashing = [
                tasks[other].label
                for other in group
                if other != index
                and not (
                    task.extension_known
                    and tasks[other].extension_known
                    and path_key(task.destination or Path()) != path_key(tasks[other].destination or Path())
                )
            ]
            if clashing:
                problems[index] = (
                    f"{', '.join(clashing)} would be written to the same output {task.destination}; "
                    "rename one, or use --suffix or --out"
                )
    return problems


def skip_reason(task: Task, args: argparse.Namespace) -> str | None:
    """Why a task is skipped before its upload (its output exists and may not be replaced), if it is."""
    if task.destination is None or not task.extension_known or not task.destination.exists():
        return None
    same = task.source is not None and path_key(task.source) == path_key(task.destination)
    if args.skip_existing:
        return "output exists (--skip-existing)"
    if args.overwrite == "never":
        if same:
            return "the output would be the input (--overwrite if-smaller or always replaces it)"
        return "output exists (--overwrite always or if-smaller replaces it)"
    return None
