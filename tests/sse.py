"""Reading Server-Sent Events in tests, from an httpx streaming response."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    """One server-sent event: its name, id and JSON data."""

    name: str
    id: str
    data: dict[str, Any]


def events(response: httpx.Response) -> Iterator[Event]:
    """The events of an SSE response as they arrive; comment lines (pings) are skipped."""
    name, event_id, data = "message", "", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Event(name, event_id, json.loads("\n".join(data)))
            name, event_id, data = "message", "", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
