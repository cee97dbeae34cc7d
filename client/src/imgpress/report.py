"""What the `imgpress` command shows: a line per file, a progress line on a terminal, a final
table, or one JSON document with `--json`; a closed pipe silences it instead of failing."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

#: Statuses a file can end with; `planned` is a dry run's.
ENDED = ("ok", "skipped", "failed", "planned", "not_started")
CLEAR_LINE = "\r\x1b[K"
#: The widest the table's file column gets; longer names lose their middle (--json has them whole).
NAME_WIDTH = 60


@dataclass
class FileOutcome:
    """How one input file ended."""

    input: str
    status: str = "pending"
    output: str | None = None
    job_id: str | None = None
    bytes_in: int = 0
    bytes_out: int | None = None
    error: dict[str, str] | None = None
    #: Why a file was skipped or planned as it was (skipped and planned files only).
    reason: str | None = None

    @property
    def saved_ratio(self) -> float | None:
        """Fraction saved, once written."""
        if self.bytes_out is None or self.bytes_in == 0:
            return None
        return round((self.bytes_in - self.bytes_out) / self.bytes_in, 4)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as plain JSON types."""
        return {**asdict(self), "saved_ratio": self.saved_ratio}


def size_text(count: float) -> str:
    """A byte count for people: 950 B, 12.3 kB, 4.5 MB."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def cut_middle(text: str, width: int) -> str:
    """The text if it fits in `width` characters, else its start and end around an ellipsis."""
    if len(text) <= width:
        return text
    tail = width // 2
    return text[: width - tail - 1] + "…" + text[len(text) - tail :]


def duration_text(seconds: float) -> str:
    """A duration for people: 7s, 2m05s, 1h02m."""
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class Output:
    """A text stream that goes quiet, instead of raising, once its reader has gone (`| head`)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False

    def isatty(self) -> bool:
        return not self.closed and self.stream.isatty()

    def write(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.closed = True
            # Python flushes the stream again at exit: point its descriptor at /dev/null first.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


@dataclass
class Report:
    """Collects outcomes and shows them as the streams and flags call for."""

    stream: Output
    as_json: bool = False
    quiet: bool = False
    progress_stream: Output | None = None
    outcomes: list[FileOutcome] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    current: str = ""
    error: dict[str, str] | None = None
    #: Files found in folders and left alone, with why (plan.NOT_INCLUDED or plan.AN_OUTPUT).
    ignored: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_run(cls, to_stdout: bool, as_json: bool, quiet: bool) -> Report:
        """The report of a run: on stderr when stdout carries an image, with progress on a tty."""
        stream = Output(sys.stderr if to_stdout else sys.stdout)
        progress = Output(sys.stderr) if not (as_json or quiet) and sys.stderr.isatty() else None
        return cls(stream, as_json, quiet, progress)

    @property
    def lines(self) -> bool:
        """True when a line is written per file (not JSON, not quiet, not under a progress line)."""
        return not (self.as_json or self.quiet) and not (self.progress_stream and self.stream.isatty())

    def add(self, outcome: FileOutcome) -> FileOutcome:
        """Track one more input."""
        self.outcomes.append(outcome)
        return outcome

    def uploading(self, outcome: FileOutcome) -> None:
        """An input's upload starts."""
        self.current = outcome.input
        self.progress()

    def queued(self, outcome: FileOutcome) -> None:
        """An input was uploaded and is now a job."""
        if self.lines:
            self._above_progress(f"queued {outcome.input} as {outcome.job_id}\n")
        self.progress()

    def finished(self, outcome: FileOutcome) -> None:
        """An input was written out, skipped or failed."""
        if outcome.status == "failed" and self.quiet and not self.as_json:
            Output(sys.stderr).write(self.line(outcome) + "\n")
        elif self.lines or (outcome.status == "failed" and self.progress_stream is not None):
            self._above_progress(self.line(outcome) + "\n")
        self.progress()

    def _above_progress(self, text: str) -> None:
        if self.progress_stream is not None:
            self.progress_stream.write(CLEAR_LINE)
        self.stream.write(text)

    def line(self, outcome: FileOutcome) -> str:
        """One plain line about an ended input."""
        if outcome.status == "ok" and outcome.bytes_out is not None:
            ratio = outcome.saved_ratio or 0.0
            return (
                f"ok {outcome.input} -> {outcome.output} "
                f"{size_text(outcome.bytes_in)} -> {size_text(outcome.bytes_out)} ({ratio:.1%} saved)"
            )
        if outcome.status in ("skipped", "planned"):
            target = f" -> {outcome.output}" if outcome.output else ""
            return f"{outcome.status} {outcome.input}{target}: {outcome.reason}"
        error = outcome.error or {}
        return f"{outcome.status} {outcome.input}: {error.get('code', 'error')}: {error.get('message', '')}"

    def totals(self) -> dict[str, int]:
        """Counts and bytes over the inputs written out."""
        written = [o for o in self.outcomes if o.status == "ok" and o.bytes_out is not None]
        bytes_in = sum(o.bytes_in for o in written)
        bytes_out = sum(o.bytes_out or 0 for o in written)
        return {
            "files": len(self.outcomes),
            "ok": len(written),
            "skipped": sum(1 for o in self.outcomes if o.status == "skipped"),
            "failed": sum(1 for o in self.outcomes if o.status in ("failed", "not_started")),
            "ignored": len(self.ignored),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "saved_bytes": bytes_in - bytes_out,
        }

    def progress_text(self, now: float) -> str:
        """The progress line: count, current file, bytes, rate and time left."""
        done = [o for o in self.outcomes if o.status in ENDED]
        total_bytes = sum(o.bytes_in for o in self.outcomes)
        done_bytes = sum(o.bytes_in for o in done)
        elapsed = max(now - self.started, 1e-6)
        rate = done_bytes / elapsed
        eta = "ETA --"
        if rate > 0 and total_bytes > done_bytes:
            eta = f"ETA {duration_text((total_bytes - done_bytes) / rate)}"
        elif total_bytes and total_bytes <= done_bytes:
            eta = "ETA 0s"
        figures = (
            f"[{len(done)}/{len(self.outcomes)}] {size_text(done_bytes)}/{size_text(total_bytes)} "
            f"{size_text(rate)}/s {eta}"
        )
        width = shutil.get_terminal_size((80, 24)).columns - 1
        room = width - len(figures) - 1
        name = self.current
        if room < len(name):
            name = "…" + name[len(name) - room + 1 :] if room > 1 else ""
        return f"{figures} {name}".rstrip()[:width]

    def progress(self) -> None:
        """Redraw the progress line in place (a terminal only)."""
        if self.progress_stream is not None:
            self.progress_stream.write(CLEAR_LINE + self.progress_text(time.monotonic()))

    def summary(self) -> None:
        """The final table (or the JSON document), once every input has ended."""
        if self.progress_stream is not None:
            self.progress_stream.write(CLEAR_LINE)
        if self.as_json:
            document = {
                "files": [o.to_dict() for o in self.outcomes],
                "totals": self.totals(),
                "ignored": [{"path": path, "reason": reason} for path, reason in self.ignored.items()],
                "error": self.error,
            }
            self.stream.write(json.dumps(document, indent=2) + "\n")
            return
        unsent = sum(1 for o in self.outcomes if o.status == "not_started")
        if self.error is not None:
            files = f"; {unsent} {'file' if unsent == 1 else 'files'} not compressed" if unsent else ""
            Output(sys.stderr).write(f"imgpress: {self.error['message']}{files}\n")
        # A run stopped before any file ended has no table to show: the error line says it all.
        if self.quiet or unsent == len(self.outcomes):
            return
        self.table()

    def ignored_text(self) -> str:
        """The end of the count line: how many files in folders were left alone, and why."""
        if not self.ignored:
            return ""
        reasons = list(self.ignored.values())
        counts = ", ".join(f"{reasons.count(reason)} {reason}" for reason in dict.fromkeys(reasons))
        files = "file" if len(reasons) == 1 else "files"
        return f"; {len(reasons)} other {files} in folders ignored ({counts})"

    def table(self) -> None:
        """Before and after sizes of every file, and the totals of those written."""
        rows = [("file", "before", "after", "saved")]
        for o in self.outcomes:
            name = cut_middle(o.input, NAME_WIDTH)
            before = size_text(o.bytes_in)
            if o.status == "ok" and o.bytes_out is not None:
                rows.append((name, before, size_text(o.bytes_out), f"{o.saved_ratio or 0:.1%}"))
            elif o.status == "not_started":
                # Cut off by the run's error: never uploaded, or uploaded and then cancelled.
                rows.append((name, before, "-", "not sent" if o.job_id is None else "not done"))
            else:
                rows.append((name, before, "-", o.status))
        totals = self.totals()
        ratio = totals["saved_bytes"] / totals["bytes_in"] if totals["bytes_in"] else 0.0
        if totals["ok"]:
            rows.append(
                ("total", size_text(totals["bytes_in"]), size_text(totals["bytes_out"]), f"{ratio:.1%}")
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        text = []
        for index, row in enumerate(rows):
            if totals["ok"] and index == len(rows) - 1:
                text.append("  ".join("-" * w for w in widths))
            cells = [row[0].ljust(widths[0])] + [
                cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)
            ]
            text.append("  ".join(cells).rstrip())
        counts = f"{totals['ok']} written, {totals['skipped']} skipped, {totals['failed']} failed"
        text.append(counts + self.ignored_text())
        self.stream.write("\n".join(text) + "\n")
