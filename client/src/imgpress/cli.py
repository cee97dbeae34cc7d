"""`imgpress compress PATH... [options]`: compress files, folders or stdin with a running server.
Exit codes: 0 all written or skipped, 1 some failed, 2 usage or refused key, 3 server
unreachable or lost, 130 Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx

from imgpress import __version__
from imgpress.answers import check_finished
from imgpress.async_client import AsyncClient
from imgpress.base import RetryPolicy
from imgpress.errors import BadOption, ImgpressError, ServerUnreachable, Unauthorized
from imgpress.models import CHOICES, OPTION_NAMES, check_options
from imgpress.outputs import Existing, write_output
from imgpress.plan import DEFAULT_INCLUDE, Plan, Task, UsageError, find_collisions, plan, skip_reason
from imgpress.report import FileOutcome, Report

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_CANCELLED = 0, 1, 2, 3, 130
DEFAULT_SERVER = "http://127.0.0.1:8000"
OVERWRITE = ("never", "always", "if-smaller")
SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "ki": 1024, "kib": 1024}
SIZE_UNITS |= {"mi": 1024**2, "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3}


class Parser(argparse.ArgumentParser):
    """argparse, raising UsageError instead of exiting, so `--json` can still print its document."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def quality(text: str) -> str:
    """The --quality value: a whole number from 1 to 100, or `auto`."""
    if text == "auto" or (text.isdigit() and 1 <= int(text) <= 100):
        return text
    raise argparse.ArgumentTypeError("must be a whole number from 1 to 100, or 'auto'")


def byte_size(text: str) -> int:
    """A --max-size value: bytes, or with a unit (200k, 1.5M, 300KiB)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in SIZE_UNITS:
        raise argparse.ArgumentTypeError("must be a size such as 200000, 200k, 1.5M or 300KiB")
    return int(float(found.group(1)) * SIZE_UNITS[unit])


def key_value(text: str) -> tuple[str, str]:
    """An --option KEY=VALUE pair with a KEY the API has."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("must be KEY=VALUE")
    if key not in OPTION_NAMES:
        raise argparse.ArgumentTypeError(f"unknown option '{key}'; the options are {', '.join(OPTION_NAMES)}")
    return key, value


def server_url(text: str) -> str:
    """A --server value: an http(s) URL with a host."""
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise argparse.ArgumentTypeError(f"not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"'{text}' is not an http:// or https:// URL (try http://{text})")
    return text


def parser() -> Parser:
    """The command line's grammar."""
    top = Parser(prog="imgpress", description="Compress images with an imgpress server.")
    top.add_argument("--version", action="version", version=f"imgpress {__version__}")
    commands = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    compress = commands.add_parser("compress", help="compress files, folders (recursively) or - for stdin")
    compress.add_argument("paths", nargs="+", metavar="PATH")
    where = compress.add_argument_group("where outputs go")
    where.add_argument("--out", type=Path, help="write outputs into this folder (default: next to inputs)")
    where.add_argument("--suffix", default=".min", help="added to output names (default: .min; '' for none)")
    where.add_argument(
        "--overwrite",
        choices=OVERWRITE,
        default="never",
        help="replace existing outputs: never (default), always, or if-smaller (only with a smaller file)",
    )
    where.add_argument(
        "--skip-existing", action="store_true", help="do not upload files whose output exists already"
    )
    where.add_argument("--keep-dates", action="store_true", help="give outputs the input's modified time")
    where.add_argument("--dry-run", action="store_true", help="show what would be written; upload nothing")
    where.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help=f"file patterns in folders (default: {' '.join(DEFAULT_INCLUDE)})",
    )
    options = compress.add_argument_group("compression")
    options.add_argument("--format", choices=CHOICES["format"], help="output format (default: same)")
    options.add_argument("--quality", type=quality, help="1-100 or auto (default: the server's, 80)")
    options.add_argument("--target", choices=CHOICES["target"], help="perceptual target for quality auto")
    options.add_argument("--max-size", type=byte_size, metavar="SIZE", help="largest output, e.g. 200k")
    options.add_argument("--max-width", type=int, metavar="PX")
    options.add_argument("--max-height", type=int, metavar="PX")
    options.add_argument("--effort", choices=CHOICES["effort"], help="encoder effort (default: balanced)")
    options.add_argument(
        "--keep-metadata",
        action="store_true",
        default=None,
        help="keep EXIF (without GPS), ICC, XMP copyright",
    )
    options.add_argument(
        "-o",
        "--option",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help=f"any other option: {', '.join(OPTION_NAMES)}",
    )
    server = compress.add_argument_group("server and output")
    server.add_argument("--concurrency", type=int, default=4, help="files in flight at once (default: 4)")
    server.add_argument(
        "--server",
        type=server_url,
        default=os.environ.get("IMGPRESS_URL", DEFAULT_SERVER),
        help="server URL (default: $IMGPRESS_URL or %(default)s)",
    )
    server.add_argument(
        "--api-key", default=os.environ.get("IMGPRESS_API_KEY"), help="default: $IMGPRESS_API_KEY"
    )
    server.add_argument("--retries", type=int, default=3, help="retries on 503/429/refused (default: 3)")
    server.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    server.add_argument("-q", "--quiet", action="store_true", help="print nothing but failures")
    return top


def server_options(args: argparse.Namespace) -> dict[str, str]:
    """The job options the user set, checked as the API will check them; BadOption if one is wrong."""
    options: dict[str, object] = {
        "format": args.format,
        "quality": args.quality,
        "target": args.target,
        "max_bytes": args.max_size,
        # With the server's default fit (scale-down) width and height are maximums.
        "width": args.max_width,
        "height": args.max_height,
        "effort": args.effort,
        "metadata": "keep" if args.keep_metadata else None,
    }
    options.update(dict(args.option))
    return check_options(options)


class Run:
    """One `imgpress compress` run: the tasks, the client, the pending jobs, the report."""

    def __init__(self, args: argparse.Namespace, tasks: list[Task], report: Report, options: dict[str, str]):
        self.args = args
        self.tasks = tasks
        self.report = report
        self.options: dict[str, Any] = options
        self.pending: set[str] = set()
        self.lost: ServerUnreachable | None = None
        self.umask = os.umask(0)
        os.umask(self.umask)
        self.client = AsyncClient(args.server, args.api_key, retry=RetryPolicy(retries=args.retries))

    def prepare(self) -> list[Task]:
        """Record collisions and skips, which need no server; the tasks left to upload."""
        collisions = find_collisions(self.tasks)
        todo = []
        for index, task in enumerate(self.tasks):
            task.outcome = outcome = self.report.add(FileOutcome(task.label))
            if task.source is not None:
                with contextlib.suppress(OSError):
                    outcome.bytes_in = task.source.stat().st_size
            elif task.data is not None:
                outcome.bytes_in = len(task.data)
            if task.destination is not None and task.extension_known:
                outcome.output = str(task.destination)
            if index in collisions:
                outcome.status = "failed"
                outcome.error = {"code": "collision", "message": collisions[index]}
            elif (reason := skip_reason(task, self.args)) is not None:
                outcome.status, outcome.reason = "skipped", reason
            elif self.args.dry_run:
                outcome.status = "planned"
                outcome.reason = (
                    "would compress" if outcome.output else "would compress (extension: the server's)"
                )
            else:
                todo.append(task)
                continue
            self.report.finished(outcome)
        return todo

    async def one(self, task: Task, gate: asyncio.Semaphore) -> None:
        """Upload, wait, download and write one input, recording how it ended."""
        outcome = task.outcome
        async with gate:
            if self.lost is not None:
                outcome.status = "not_started"
                outcome.error = {"code": self.lost.code, "message": "not sent: the server was lost"}
                self.report.finished(outcome)
                return
            try:
                self.report.uploading(outcome)
                source: Any = task.source if task.source is not None else task.data
                name = task.source.name if task.source is not None else None
                job = await self.client.submit(source, filename=name, **self.options)
                outcome.job_id, outcome.bytes_in = job.id, job.input.bytes
                self.pending.add(job.id)
                self.report.queued(outcome)
                job = await self.client.wait(job.id)
                check_finished(job)
                output = await self.client.download(job.id)
                self.pending.discard(job.id)
                destination = task.final_destination(output.filename)
                outcome.output = str(destination) if destination is not None else "<stdout>"
                if destination is None:
                    self.write_stdout(output.data)
                else:
                    write_output(task, destination, output.data, self.args, self.umask)
                outcome.status, outcome.bytes_out = "ok", len(output.data)
            except Existing as exc:
                outcome.status, outcome.reason = "skipped", str(exc)
            except ServerUnreachable as exc:
                self.lost = self.lost or exc
                outcome.status, outcome.error = "failed", {"code": exc.code, "message": exc.message}
            except ImgpressError as exc:
                outcome.status, outcome.error = "failed", {"code": exc.code, "message": exc.message}
            except OSError as exc:
                message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
                outcome.status, outcome.error = "failed", {"code": "file_error", "message": message}
        self.report.finished(outcome)

    def write_stdout(self, data: bytes) -> None:
        """The output of stdin's image, on standard output."""
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    async def cancel(self) -> int:
        """Delete every job still pending; the number deleted."""
        deleted = 0
        for job_id in sorted(self.pending):
            with contextlib.suppress(ImgpressError):
                await self.client.delete(job_id)
                deleted += 1
        return deleted

    def stop(self, code: str, message: str, status: int) -> int:
        """End the run with an error: files not yet sent are `not_started`; the exit status."""
        self.report.error = {"code": code, "message": message}
        for outcome in self.report.outcomes:
            if outcome.status == "pending":
                outcome.status = "not_started"
        self.report.summary()
        return status

    async def execute(self) -> int:
        """Run every task; the exit code. On Ctrl-C, delete the pending jobs and report first."""
        try:
            return await self.upload_all()
        except asyncio.CancelledError:
            deleted = await self.cancel()
            self.stop("cancelled", f"cancelled; deleted {deleted} pending job(s)", EXIT_CANCELLED)
            raise

    async def upload_all(self) -> int:
        """Check the server, then upload, wait for and write every planned file; the exit code."""
        todo = self.prepare()
        if todo and not self.args.dry_run:
            try:
                await self.client.check_access()
            except Unauthorized as exc:
                return self.stop(exc.code, f"{exc.message} ({self.args.server})", EXIT_USAGE)
            except ImgpressError as exc:
                # No answer, not an imgpress API (a 404), or one that cannot work (503).
                return self.stop(exc.code, f"{exc.message} ({self.args.server})", EXIT_UNREACHABLE)
            gate = asyncio.Semaphore(max(1, self.args.concurrency))
            await asyncio.gather(*(self.one(task, gate) for task in todo))
        if self.lost is not None:
            message = f"lost the server: {self.lost.message}"
            return self.stop(self.lost.code, message, EXIT_UNREACHABLE)
        self.report.summary()
        failed = any(o.status in ("failed", "not_started") for o in self.report.outcomes)
        return EXIT_FAILED if failed else EXIT_OK


async def compress(args: argparse.Namespace, planned: Plan, options: dict[str, str]) -> int:
    """The `compress` command."""
    to_stdout = any(task.destination is None for task in planned.tasks)
    report = Report.for_run(to_stdout, args.json, args.quiet)
    report.ignored = planned.ignored
    run = Run(args, planned.tasks, report, options)
    try:
        return await run.execute()
    finally:
        await run.client.aclose()


def usage_failure(message: str, as_json: bool) -> int:
    """Say what is wrong with the command line (as the one JSON document with --json); exit 2."""
    if as_json:
        document = {"files": [], "totals": {}, "error": {"code": "usage", "message": message}}
        with contextlib.suppress(BrokenPipeError):
            print(json.dumps(document, indent=2))
    print(f"imgpress: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `imgpress` console script; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in arguments
    try:
        args = parser().parse_args(arguments)
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        options = server_options(args)
        planned = plan(args, options.get("format"))
    except (UsageError, BadOption) as exc:
        return usage_failure(str(exc), as_json)
    try:
        return asyncio.run(compress(args, planned, options))
    except KeyboardInterrupt:
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
