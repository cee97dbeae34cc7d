"""The command line's report: lines on a pipe, a progress line on a terminal, a table or JSON."""

from __future__ import annotations

import io
import json
import re

import pytest

from imgpress.report import FileOutcome, Output, Report, duration_text, size_text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def outcomes(report: Report) -> None:
    good = report.add(FileOutcome("a.jpg", job_id="1" * 32, bytes_in=2000))
    bad = report.add(FileOutcome("b.jpg", job_id="2" * 32, bytes_in=500))
    report.uploading(good)
    report.queued(good)
    good.status, good.output, good.bytes_out = "ok", "a.min.jpg", 500
    report.finished(good)
    report.uploading(bad)
    bad.status, bad.error = "failed", {"code": "corrupt_image", "message": "cut short"}
    report.finished(bad)
    report.summary()


def test_a_terminal_gets_a_progress_line_redrawn_in_place_then_the_table() -> None:
    stream, progress = Terminal(), Terminal()
    outcomes(Report(Output(stream), progress_stream=Output(progress)))
    drawn = progress.getvalue()
    # Each redraw clears the line first, so a shorter line leaves nothing of a longer one.
    frames = drawn.split("\r\x1b[K")
    assert frames[0] == "" and frames[-1] == ""
    assert any(re.fullmatch(r"\[1/2\] 2\.0 kB/2\.5 kB \S+ \S+/s ETA \S+ b\.jpg", frame) for frame in frames)
    assert any(frame.startswith("[0/2]") and frame.endswith("a.jpg") for frame in frames)
    text = stream.getvalue()
    assert "queued" not in text
    assert "failed b.jpg: corrupt_image: cut short" in text
    assert "a.jpg  2.0 kB  500 B   75.0%" in text
    assert "1 written, 0 skipped, 1 failed" in text


def test_a_long_name_is_cut_to_the_terminal_width() -> None:
    report = Report(Output(io.StringIO()))
    report.add(FileOutcome("x" * 500, bytes_in=10))
    report.current = "x" * 500
    assert len(report.progress_text(report.started + 1)) < 200


def test_a_pipe_gets_plain_lines() -> None:
    stream = io.StringIO()
    outcomes(Report(Output(stream)))
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"queued a.jpg as {'1' * 32}"
    assert lines[1] == "ok a.jpg -> a.min.jpg 2.0 kB -> 500 B (75.0% saved)"
    assert "\r" not in stream.getvalue()


def test_json_is_one_document() -> None:
    stream = io.StringIO()
    outcomes(Report(Output(stream), as_json=True))
    document = json.loads(stream.getvalue())
    assert document["totals"] == {
        "files": 2,
        "ok": 1,
        "skipped": 0,
        "failed": 1,
        "ignored": 0,
        "bytes_in": 2000,
        "bytes_out": 500,
        "saved_bytes": 1500,
    }
    assert document["files"][0]["saved_ratio"] == 0.75
    assert document["error"] is None and document["ignored"] == []


def test_files_ignored_in_folders_are_counted() -> None:
    stream = io.StringIO()
    report = Report(Output(stream))
    report.ignored = {
        "p/notes.txt": "not matching --include",
        "p/a.min.jpg": "named like an output (--suffix)",
        "p/scan.bmp": "not matching --include",
    }
    outcomes(report)
    assert stream.getvalue().splitlines()[-1] == (
        "1 written, 0 skipped, 1 failed; 3 other files in folders ignored "
        "(2 not matching --include, 1 named like an output (--suffix))"
    )
    as_json = io.StringIO()
    outcomes(Report(Output(as_json), as_json=True, ignored={"p/notes.txt": "not matching --include"}))
    document = json.loads(as_json.getvalue())
    assert document["totals"]["ignored"] == 1
    assert document["ignored"] == [{"path": "p/notes.txt", "reason": "not matching --include"}]


def test_sizes_and_durations_read_well() -> None:
    assert [size_text(n) for n in (950, 12_345, 4_500_000)] == ["950 B", "12.3 kB", "4.5 MB"]
    assert [duration_text(s) for s in (7.2, 125, 3720)] == ["7s", "2m05s", "1h02m"]


def test_a_long_name_is_cut_in_the_middle_in_the_table_and_kept_whole_in_json() -> None:
    name = "photos/" + "a very long name " * 12 + "end.jpg"
    stream = io.StringIO()
    report = Report(Output(stream))
    report.add(FileOutcome(name, status="ok", output="x.jpg", bytes_in=2000, bytes_out=500))
    report.summary()
    rows = stream.getvalue().splitlines()
    cell = name[:29] + "…" + name[-30:]
    assert len(cell) == 60 and rows[1] == f"{cell}  2.0 kB  500 B  75.0%"
    assert max(len(row) for row in rows) == len(rows[1])
    as_json = io.StringIO()
    report.stream = Output(as_json)
    report.as_json = True
    report.summary()
    assert json.loads(as_json.getvalue())["files"][0]["input"] == name


def test_a_run_stopped_before_any_file_ended_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    report = Report(Output(stream))
    for name in ("a.jpg", "b.jpg"):
        report.add(FileOutcome(name, status="not_started", bytes_in=100))
    report.error = {"code": "server_unreachable", "message": "The imgpress server cannot be reached."}
    report.summary()
    assert stream.getvalue() == ""
    error = capsys.readouterr().err
    assert error == "imgpress: The imgpress server cannot be reached.; 2 files not compressed\n"


def test_files_cut_off_mid_run_read_not_sent_and_no_total_row_without_output() -> None:
    stream = io.StringIO()
    report = Report(Output(stream))
    report.add(FileOutcome("a.jpg", status="failed", bytes_in=100, error={"code": "corrupt_image"}))
    report.add(FileOutcome("b.jpg", status="not_started", bytes_in=100))
    report.table()
    assert stream.getvalue().splitlines() == [
        "file   before  after     saved",
        "a.jpg   100 B      -    failed",
        "b.jpg   100 B      -  not sent",
        "0 written, 0 skipped, 2 failed",
    ]
