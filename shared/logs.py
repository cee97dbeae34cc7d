"""Logging for every imgpress process: one JSON object per line (plain text on a terminal),
with the request or job id in hand, for our loggers and those of uvicorn, RQ and rq-scheduler."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from shared import names

#: Attributes of every LogRecord; anything else passed in `extra=` becomes a JSON field.
#: uvicorn's `color_message` (the message with terminal colours) is left out too.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}

_COLOURS = re.compile(r"\x1b\[[0-9;]*m")

#: The request (API) or job (worker) the current code runs for, added to each record.
REQUEST_ID: ContextVar[str | None] = ContextVar("imgpress_request_id", default=None)
JOB_ID: ContextVar[str | None] = ContextVar("imgpress_job_id", default=None)

#: Libraries that log every request they make at INFO: their warnings and errors still show.
_CHATTY = ("httpx", "httpcore", "multipart", "python_multipart", "PIL")


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON: time (UTC), level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            # RQ colours its messages when stdout is a terminal, whatever stderr is.
            "message": _COLOURS.sub("", record.getMessage()),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


#: The maintenance jobs (the periodic sweep, each job's expiry) RQ would log on every run.
_ROUTINE_JOBS = (names.SWEEP_SCHEDULE_ID, names.EXPIRY_JOB_PREFIX)
#: RQ's lines at the end of every successful job: the job's own "finished" line says more.
_JOB_END = re.compile(r"Job OK \(|result is kept for|Successfully completed job ")


def _routine(record: logging.LogRecord) -> bool:
    """Whether the record is RQ's informational chatter: about a maintenance job, or the end of a
    job that our own record of it reports."""
    if not record.name.startswith("rq.") or record.levelno > logging.INFO:
        return False
    job_id = str(getattr(record, "job_id", "") or "")
    message = _COLOURS.sub("", record.getMessage())
    return _JOB_END.search(message) is not None or any(
        job_id.startswith(name) or f"({name}" in message or f"job {name}" in message for name in _ROUTINE_JOBS
    )


class _Context(logging.Filter):
    """Adds the request or job id in hand to a record that does not carry one already, and
    drops RQ's informational lines about maintenance jobs (every 30 s when idle)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in (("request_id", REQUEST_ID), ("job_id", JOB_ID)):
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return not _routine(record)


def configure(level: int = logging.INFO) -> None:
    """Send every logger's records to stderr: JSON lines, or plain text when stderr is a terminal.

    The handler sits on the root logger, so records of any module (ours, uvicorn's, RQ's,
    rq-scheduler's) reach it; RQ then adds no handler of its own.
    """
    root = logging.getLogger()
    if not any(getattr(handler, "imgpress", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.imgpress = True  # type: ignore[attr-defined]
        if sys.stderr.isatty():
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        else:
            handler.setFormatter(JsonFormatter())
        handler.addFilter(_Context())
        root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every record logged inside the block with this job's id."""
    token = JOB_ID.set(job_id)
    try:
        yield
    finally:
        JOB_ID.reset(token)
