"""What the `imgpress` command line shows: a progress bar on a terminal, plain lines otherwise,
a final table of savings, or one JSON document with `--json`. Standard library only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

BAR_WIDTH = 30


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

    @property
    def saved_ratio(self) -> float | None:
        """Fraction saved, once written."""
        if self.bytes_out is None or self.bytes_in == 0:
            return None
        return round((self.bytes_in - self.bytes_out) / self.bytes_in, 4)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as plain JSON types."""
        return {**asdict(self), "saved_ratio": self.saved_ratio}


def size_text(count: int) -> str:
    """A byte count for people: 950 B, 12.3 kB, 4.5 MB."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


@dataclass
class Report:
    """Collects outcomes and shows them the way the stream calls for."""

    stream: TextIO
    as_json: bool = False
    outcomes: list[FileOutcome] = field(default_factory=list)

    @property
    def interactive(self) -> bool:
        """True on a terminal, where a progress bar is redrawn in place."""
        return not self.as_json and self.stream.isatty()

    @property
    def done(self) -> list[FileOutcome]:
        """Outcomes that have ended, well or not."""
        return [o for o in self.outcomes if o.status in ("ok", "failed")]

    def add(self, outcome: FileOutcome) -> FileOutcome:
        """Track one more input."""
        self.outcomes.append(outcome)
        return outcome

    def queued(self, outcome: FileOutcome) -> None:
        """An input was uploaded and is now a job."""
        if self.interactive:
            self.progress()
        elif not self.as_json:
            self.stream.write(f"queued {outcome.input} as {outcome.job_id}\n")
            self.stream.flush()

    def finished(self, outcome: FileOutcome) -> None:
        """An input was written out or failed."""
        if self.interactive:
            self.progress()
        elif not self.as_json:
            self.stream.write(self.line(outcome) + "\n")
            self.stream.flush()

    def line(self, outcome: FileOutcome) -> str:
        """One plain line about an ended input."""
        if outcome.status == "ok" and outcome.bytes_out is not None:
            ratio = outcome.saved_ratio or 0.0
            return (
                f"ok {outcome.input} -> {outcome.output} "
                f"{size_text(outcome.bytes_in)} -> {size_text(outcome.bytes_out)} ({ratio:.1%} saved)"
            )
        error = outcome.error or {}
        return f"failed {outcome.input}: {error.get('code', 'error')}: {error.get('message', '')}"

    def totals(self) -> dict[str, int]:
        """Counts and bytes over the inputs written out."""
        written = [o for o in self.outcomes if o.status == "ok" and o.bytes_out is not None]
        bytes_in = sum(o.bytes_in for o in written)
        bytes_out = sum(o.bytes_out or 0 for o in written)
        failed = sum(1 for o in self.outcomes if o.status == "failed")
        return {
            "files": len(self.outcomes),
            "ok": len(written),
            "failed": failed,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "saved_bytes": bytes_in - bytes_out,
        }

    def progress(self) -> None:
        """Redraw the bar: files done and bytes in -> out so far."""
        totals = self.totals()
        count = len(self.outcomes) or 1
        filled = BAR_WIDTH * len(self.done) // count
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stream.write(
            f"\r[{bar}] {len(self.done)}/{len(self.outcomes)} files  "
            f"{size_text(totals['bytes_in'])} -> {size_text(totals['bytes_out'])}  "
        )
        self.stream.flush()

    def summary(self) -> None:
        """The final table (or the JSON document), once every input has ended."""
        if self.as_json:
            document = {"files": [o.to_dict() for o in self.outcomes], "totals": self.totals()}
            self.stream.write(json.dumps(document, indent=2) + "\n")
            return
        if self.interactive:
            self.stream.write("\n")
            for outcome in self.outcomes:
                if outcome.status == "failed":
                    self.stream.write(self.line(outcome) + "\n")
        rows = [("file", "before", "after", "saved")]
        for o in self.outcomes:
            if o.status == "ok" and o.bytes_out is not None:
                rows.append(
                    (o.input, size_text(o.bytes_in), size_text(o.bytes_out), f"{o.saved_ratio or 0:.1%}")
                )
            else:
                rows.append((o.input, size_text(o.bytes_in), "-", o.status))
        totals = self.totals()
        ratio = totals["saved_bytes"] / totals["bytes_in"] if totals["bytes_in"] else 0.0
        rows.append(("total", size_text(totals["bytes_in"]), size_text(totals["bytes_out"]), f"{ratio:.1%}"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for index, row in enumerate(rows):
            if index == len(rows) - 1:
                self.stream.write("  ".join("-" * w for w in widths) + "\n")
            cells = [row[0].ljust(widths[0])] + [
                cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)
            ]
            self.stream.write("  ".join(cells).rstrip() + "\n")
        self.stream.write(f"{totals['ok']} written, {totals['failed']} failed\n")
