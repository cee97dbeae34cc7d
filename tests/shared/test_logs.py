"""shared.logs: one JSON object per record, with the request or job id in hand."""

from __future__ import annotations

import json
import logging

from shared import logs


def formatted(message: str, **extra: object) -> dict[str, object]:
    record = logging.makeLogRecord(
        {"msg": message, "name": "rq.worker", "levelname": "INFO", "levelno": logging.INFO, **extra}
    )
    logs._Context().filter(record)
    parsed: dict[str, object] = json.loads(logs.JsonFormatter().format(record))
    return parsed


def test_a_record_is_one_json_line_without_terminal_colours() -> None:
    # RQ colours its messages when stdout is a terminal, even when stderr (the log) is not.
    entry = formatted("Worker w: \x1b[32mimgpress\x1b[39;49;00m: \x1b[34mJob OK\x1b[39;49;00m (abc)")
    assert entry["message"] == "Worker w: imgpress: Job OK (abc)"
    assert {"time", "level", "logger", "message"} <= set(entry)
    assert str(entry["time"]).endswith("+00:00")


def test_the_job_or_request_in_hand_is_added() -> None:
    with logs.job_context("job-1"):
        assert formatted("done")["job_id"] == "job-1"
    assert "job_id" not in formatted("idle")
    token = logs.REQUEST_ID.set("req-9")
    try:
        assert formatted("GET /")["request_id"] == "req-9"
        assert formatted("GET /", request_id="given")["request_id"] == "given"
    finally:
        logs.REQUEST_ID.reset(token)


def passes(message: str, name: str = "rq.worker", level: int = logging.INFO, **extra: object) -> bool:
    record = logging.makeLogRecord({"msg": message, "name": name, "levelno": level, **extra})
    return logs._Context().filter(record)


def test_rq_chatter_about_maintenance_jobs_is_dropped() -> None:
    assert not passes("maintenance: imgpress.sweep (imgpress-sweep)")
    assert not passes("Successfully completed job imgpress-sweep in 0:00:00.01s")
    assert not passes("maintenance: expire abc (expire-abc)")
    with logs.job_context("imgpress-sweep"):
        assert not passes("Result will never expire, clean up result key manually")
    # What a user needs stays: a compression job's start (its end is our own "finished" line),
    # warnings about maintenance, our own loggers.
    assert passes("imgpress: compress image/jpeg (123 bytes) (abc)")
    for end in ("Worker w: imgpress: Job OK (abc)", "Worker w: job abc result is kept for 1800 seconds"):
        assert not passes(end, job_id="abc")
    assert not passes("Worker w: \x1b[32mimgpress\x1b[39;49;00m: \x1b[34mJob OK\x1b[39;49;00m (abc)")
    assert passes("Worker w: job abc failed", job_id="abc", level=logging.WARNING)
    assert passes("maintenance: sweep failed (imgpress-sweep)", level=logging.WARNING)
    assert passes("registered the periodic sweep (imgpress-sweep)", name="imgpress.scheduler")
