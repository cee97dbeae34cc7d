"""`imgpress compress PATH... [options]`: compress files, folders or stdin with a running server.

Exit codes: 0 every file written, 1 some files failed (each reported), 2 usage error,
3 server unreachable, 130 cancelled with Ctrl-C (its pending jobs are deleted first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.cli_report import FileOutcome, Report
from shared.client import AsyncClient, RetryPolicy
from shared.client_answers import failure_of
from shared.client_errors import ServerUnreachable
from shared.errors import ImgpressError, JobNotFinished
from shared.schema import JobStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_CANCELLED = 0, 1, 2, 3, 130
DEFAULT_INCLUDE = ["*.jpg", "*.jpeg", "*.png", "*.gif", "*.webp"]
DEFAULT_SERVER = "http://127.0.0.1:8000"
STDIN = "-"


class UsageError(Exception):
    """Raised when the command line asks for something impossible (exit code 2)."""


@dataclass(frozen=True)
class Task:
    """One input and where its output goes (None: standard output)."""

    source: Path | None
    label: str
    destination: Path | None


def quality(text: str) -> str:
    """The --quality value: a whole number from 1 to 100, or `auto`."""
    if text == "auto" or (text.isdigit() and 1 <= int(text) <= 100):
        return text
    raise argparse.ArgumentTypeError("must be a whole number from 1 to 100, or 'auto'")


def key_value(text: str) -> tuple[str, str]:
    """An --option KEY=VALUE pair."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("must be KEY=VALUE")
    return key, value


def parser() -> argparse.ArgumentParser:
    """The command line's grammar."""
    top = argparse.ArgumentParser(prog="imgpress", description="Compress images with an imgpress server.")
    commands = top.add_subparsers(dest="command", required=True)
    compress = commands.add_parser("compress", help="compress files, folders (recursively) or - for stdin")
    compress.add_argument("paths", nargs="+", metavar="PATH")
    compress.add_argument("--out", type=Path, help="write outputs into this folder (default: next to inputs)")
    compress.add_argument("--suffix", default=".min", help="added to output names (default: .min)")
    compress.add_argument("--overwrite", action="store_true", help="replace existing output files")
    compress.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help=f"file patterns in folders (default: {DEFAULT_INCLUDE})",
    )
    compress.add_argument("--format", help="same, jpeg, png, webp, avif or auto")
    compress.add_argument("--quality", type=quality, help="1-100 or auto")
    compress.add_argument("--max-width", type=int, metavar="PX")
    compress.add_argument("--max-height", type=int, metavar="PX")
    compress.add_argument(
        "--keep-metadata",
        action="store_true",
        default=None,
        help="keep EXIF (without GPS), ICC, XMP copyright",
    )
    compress.add_argument(
        "-o",
        "--option",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="any other server option, passed through as is",
    )
    compress.add_argument("--concurrency", type=int, default=4, help="files in flight at once (default: 4)")
    compress.add_argument(
        "--server",
        default=os.environ.get("IMGPRESS_URL", DEFAULT_SERVER),
        help="server URL (default: $IMGPRESS_URL or %(default)s)",
    )
    compress.add_argument(
        "--api-key", default=os.environ.get("IMGPRESS_API_KEY"), help="default: $IMGPRESS_API_KEY"
    )
    compress.add_argument("--retries", type=int, default=3, help="retries on 503/429/refused (default: 3)")
    compress.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    return top


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """The job options the user set; the server validates them."""
    options: dict[str, Any] = {
        "format": args.format,
        "quality": args.quality,
        # With the server's default fit (scale-down) width and height are maximums.
        "width": args.max_width,
        "height": args.max_height,
        "metadata": "keep" if args.keep_metadata else None,
    }
    options.update(dict(args.option))
    return {key: value for key, value in options.items() if value is not None}


def matches(path: Path, patterns: Sequence[str], suffix: str) -> bool:
    """True if a file found in a folder should be compressed (and is not one of our outputs)."""
    name = path.name.lower()
    return any(fnmatch.fnmatch(name, p.lower()) for p in patterns) and not path.stem.endswith(suffix)


def output_for(source: Path, root: Path | None, args: argparse.Namespace) -> Path:
    """Where an input's output goes (its extension may change to the output format's)."""
    name = f"{source.stem}{args.suffix}{source.suffix}"
    if args.out is None:
        return source.with_name(name)
    out: Path = args.out
    relative = source.relative_to(root).parent if root is not None else Path()
    return out / relative / name


def plan(args: argparse.Namespace) -> list[Task]:
    """Every input named on the command line, with its destination; UsageError if one is missing."""
    tasks: list[Task] = []
    patterns = args.include or DEFAULT_INCLUDE
    for raw in args.paths:
        if raw == STDIN:
            destination = args.out / f"stdin{args.suffix}" if args.out is not None else None
            tasks.append(Task(None, STDIN, destination))
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and matches(p, patterns, args.suffix))
            tasks.extend(Task(p, str(p), output_for(p, path, args)) for p in found)
        elif path.is_file():
            tasks.append(Task(path, str(path), output_for(path, None, args)))
        else:
            raise UsageError(f"no such file or folder: {raw}")
    if sum(1 for t in tasks if t.destination is None) > 1:
        raise UsageError("'-' can be given once")
    if not tasks:
        raise UsageError("no files to compress (check --include)")
    return tasks


def write_output(destination: Path | None, data: bytes, overwrite: bool) -> None:
    """Write an output file atomically, refusing to replace one unless asked."""
    if destination is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} exists (use --overwrite)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=destination.parent, prefix=".imgpress-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        if overwrite:
            os.replace(temp, destination)
        else:
            os.link(temp, destination)  # fails if the file appeared meanwhile: never clobber
    finally:
        Path(temp).unlink(missing_ok=True)


class Run:
    """One `imgpress compress` run: the tasks, the client, the pending jobs, the report."""

    def __init__(self, args: argparse.Namespace, tasks: list[Task], report: Report) -> None:
        self.args = args
        self.tasks = tasks
        self.report = report
        self.options = server_options(args)
        self.pending: set[str] = set()
        self.client = AsyncClient(args.server, args.api_key, retry=RetryPolicy(retries=args.retries))

    async def one(self, task: Task, gate: asyncio.Semaphore) -> None:
        """Upload, wait, download and write one input, recording how it ended."""
        outcome = self.report.add(FileOutcome(task.label))
        async with gate:
            try:
                source: Any = task.source if task.source is not None else sys.stdin.buffer
                if task.source is not None:
                    outcome.bytes_in = task.source.stat().st_size
                if task.destination is not None and task.destination.exists() and not self.args.overwrite:
                    raise FileExistsError(f"{task.destination} exists (use --overwrite)")
                job = await self.client.submit(
                    source, filename=task.source.name if task.source else None, **self.options
                )
                outcome.job_id, outcome.bytes_in = job.id, job.input.bytes
                self.pending.add(job.id)
                self.report.queued(outcome)
                job = await self.client.wait(job.id)
                if job.status is JobStatus.FAILED:
                    raise failure_of(job)
                if job.status is not JobStatus.FINISHED:
                    raise JobNotFinished()
                output = await self.client.download(job.id)
                self.pending.discard(job.id)
                destination = task.destination
                if destination is not None and output.filename:
                    destination = destination.with_suffix(Path(output.filename).suffix)
                write_output(destination, output.data, self.args.overwrite)
                outcome.status, outcome.bytes_out = "ok", len(output.data)
                outcome.output = str(destination) if destination is not None else "<stdout>"
            except ImgpressError as exc:
                outcome.status, outcome.error = "failed", {"code": exc.code, "message": exc.message}
            except OSError as exc:
                outcome.status, outcome.error = "failed", {"code": "file_error", "message": str(exc)}
        self.report.finished(outcome)

    async def cancel(self) -> int:
        """Delete every job still pending; the number deleted."""
        deleted = 0
        for job_id in sorted(self.pending):
            with contextlib.suppress(ImgpressError):
                await self.client.delete(job_id)
                deleted += 1
        return deleted

    async def execute(self) -> int:
        """Run every task; the exit code."""
        try:
            await self.client.ping()
        except ServerUnreachable as exc:
            print(f"imgpress: {exc.message} ({self.args.server})", file=sys.stderr)
            return EXIT_UNREACHABLE
        gate = asyncio.Semaphore(max(1, self.args.concurrency))
        try:
            await asyncio.gather(*(self.one(task, gate) for task in self.tasks))
        except asyncio.CancelledError:
            deleted = await self.cancel()
            print(f"\nimgpress: cancelled; deleted {deleted} pending job(s)", file=sys.stderr)
            raise
        self.report.summary()
        return EXIT_FAILED if any(o.status == "failed" for o in self.report.outcomes) else EXIT_OK


async def compress(args: argparse.Namespace, tasks: list[Task]) -> int:
    """The `compress` command."""
    to_stdout = any(task.destination is None for task in tasks)
    report = Report(sys.stderr if to_stdout else sys.stdout, as_json=args.json)
    run = Run(args, tasks, report)
    try:
        return await run.execute()
    finally:
        await run.client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `imgpress` console script; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        tasks = plan(args)
    except UsageError as exc:
        print(f"imgpress: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(compress(args, tasks))
    except KeyboardInterrupt:
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
