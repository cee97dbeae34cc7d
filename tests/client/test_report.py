"""The command line's report: a bar on a terminal, lines otherwise, a table or JSON at the end."""

from __future__ import annotations

import io
import json

from shared.cli_report import FileOutcome, Report, size_text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def outcomes(report: Report) -> None:
    good = report.add(FileOutcome("a.jpg", job_id="1" * 32, bytes_in=2000))
    bad = report.add(FileOutcome("b.jpg", job_id="2" * 32, bytes_in=500))
    report.queued(good)
    good.status, good.output, good.bytes_out = "ok", "a.min.jpg", 500
    report.finished(good)
    bad.status, bad.error = "failed", {"code": "corrupt_image", "message": "cut short"}
    report.finished(bad)
    report.summary()


def test_terminal_gets_a_progress_bar_then_the_table() -> None:
    stream = Terminal()
    outcomes(Report(stream))
    text = stream.getvalue()
    assert "\r[" + "#" * 15 + "." * 15 + "] 1/2 files  2.0 kB -> 500 B" in text
    assert "queued" not in text
    assert "failed b.jpg: corrupt_image: cut short" in text
    assert "a.jpg  2.0 kB  500 B   75.0%" in text
    assert "1 written, 1 failed" in text


def test_a_pipe_gets_plain_lines() -> None:
    stream = io.StringIO()
    outcomes(Report(stream))
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"queued a.jpg as {'1' * 32}"
    assert lines[1] == "ok a.jpg -> a.min.jpg 2.0 kB -> 500 B (75.0% saved)"
    assert "\r" not in stream.getvalue()


def test_json_is_one_document() -> None:
    stream = io.StringIO()
    outcomes(Report(stream, as_json=True))
    document = json.loads(stream.getvalue())
    assert document["totals"] == {
        "files": 2,
        "ok": 1,
        "failed": 1,
        "bytes_in": 2000,
        "bytes_out": 500,
        "saved_bytes": 1500,
    }
    assert document["files"][0]["saved_ratio"] == 0.75


def test_sizes_read_well() -> None:
    assert [size_text(n) for n in (950, 12_345, 4_500_000)] == ["950 B", "12.3 kB", "4.5 MB"]
