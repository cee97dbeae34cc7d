"""Logging: one JSON object per line (for log collectors), or plain text on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

#: Attributes of every LogRecord; anything else passed in `extra=` becomes a JSON field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON: time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: int = logging.INFO) -> None:
    """Send the `imgpress` loggers to stderr: JSON lines, or plain text when stderr is a terminal."""
    logger = logging.getLogger("imgpress")
    if any(getattr(handler, "imgpress", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.imgpress = True  # type: ignore[attr-defined]
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
