"""What the imgpress API talks about, as the client's own types: options, jobs, batches, events."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, TypeVar, get_args

from imgpress.errors import BadOption, UnknownOption

Format = Literal["same", "jpeg", "png", "webp", "avif", "auto"]
Target = Literal["high", "medium", "low"]
Fit = Literal["scale-down", "contain", "cover"]
Metadata = Literal["strip", "keep"]
Effort = Literal["fast", "balanced", "max"]
JobStatus = Literal["queued", "started", "finished", "failed"]
BatchStatus = Literal["running", "finished"]

MIN_QUALITY, MAX_QUALITY = 1, 100
MIN_MAX_BYTES = 100
MAX_SIDE = 16384
TERMINAL: frozenset[str] = frozenset({"finished", "failed"})


class Options(TypedDict, total=False):
    """The compression options of a job; every one may be left out for the server's default."""

    #: 1-100, or "auto": the lowest quality whose output meets `target`.
    quality: int | Literal["auto"]
    format: Format
    target: Target
    #: The largest output wanted, in bytes (at least 100).
    max_bytes: int
    width: int
    height: int
    fit: Fit
    metadata: Metadata
    effort: Effort


#: Each option that takes one of a few words, with those words.
CHOICES: dict[str, tuple[str, ...]] = {
    "format": get_args(Format),
    "target": get_args(Target),
    "fit": get_args(Fit),
    "metadata": get_args(Metadata),
    "effort": get_args(Effort),
}
#: Each whole-number option with its smallest and largest value.
RANGES: dict[str, tuple[int, int]] = {
    "quality": (MIN_QUALITY, MAX_QUALITY),
    "max_bytes": (MIN_MAX_BYTES, 2**40),
    "width": (1, MAX_SIDE),
    "height": (1, MAX_SIDE),
}
OPTION_NAMES: tuple[str, ...] = tuple(Options.__annotations__)


def check_options(options: Mapping[str, object]) -> dict[str, str]:
    """The options as query text, after checking every name and value; raises BadOption."""
    checked: dict[str, str] = {}
    for name, value in options.items():
        if name not in OPTION_NAMES:
            raise UnknownOption(name)
        if value is None:
            continue
        checked[name] = _option_text(name, value)
    return checked


def _option_text(name: str, value: object) -> str:
    if name in CHOICES:
        if value not in CHOICES[name]:
            raise BadOption(f"'{name}' must be one of {', '.join(CHOICES[name])}; not {value!r}.")
        return str(value)
    if name == "quality" and value == "auto":
        return "auto"
    low, high = RANGES[name]
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        extra = " or 'auto'" if name == "quality" else ""
        raise BadOption(f"'{name}' must be a whole number from {low} to {high}{extra}; not {value!r}.")
    return str(value)


@dataclass(frozen=True)
class InputInfo:
    """What was uploaded."""

    filename: str
    media_type: str
    bytes: int
    width: int
    height: int


@dataclass(frozen=True)
class OutputInfo:
    """What the server produced."""

    media_type: str
    bytes: int
    width: int
    height: int
    quality: int | None = None
    format: str | None = None


@dataclass(frozen=True)
class JobError:
    """Why a job failed, or a batch's file was refused: a stable code and a message for people."""

    code: str
    message: str


@dataclass(frozen=True)
class Job:
    """A compression job as the server shows it."""

    id: str
    status: JobStatus
    created_at: str
    input: InputInfo
    options: dict[str, Any]
    started_at: str | None = None
    finished_at: str | None = None
    expires_at: str | None = None
    output: OutputInfo | None = None
    error: JobError | None = None
    batch_id: str | None = None
    callback_url: str | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the job will not change again (finished or failed)."""
        return self.status in TERMINAL

    @property
    def saved_bytes(self) -> int | None:
        """Bytes saved, once finished."""
        return None if self.output is None else self.input.bytes - self.output.bytes

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """The job in a JSON resource (unknown fields are ignored, for newer servers)."""
        return cls(
            id=data["id"],
            status=data["status"],
            created_at=data["created_at"],
            input=_known(InputInfo, data["input"]),
            options=dict(data.get("options") or {}),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            expires_at=data.get("expires_at"),
            output=_known(OutputInfo, data["output"]) if data.get("output") else None,
            error=_known(JobError, data["error"]) if data.get("error") else None,
            batch_id=data.get("batch_id"),
            callback_url=data.get("callback_url"),
        )


@dataclass(frozen=True)
class Rejected:
    """A file of a batch upload refused before it became a job."""

    filename: str
    error: JobError
    #: The file's position in the upload (0-based), when the server says.
    index: int | None = None


@dataclass(frozen=True)
class Batch:
    """Several jobs uploaded together with the same options."""

    id: str
    status: BatchStatus
    created_at: str
    jobs: tuple[Job, ...]
    rejected: tuple[Rejected, ...]
    counts: dict[str, int]
    total: int
    input_bytes: int
    output_bytes: int
    saved_bytes: int
    callback_url: str | None = None

    @property
    def is_terminal(self) -> bool:
        """True once every job has finished, failed or been deleted."""
        return self.status == "finished"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        """The batch in a JSON resource."""
        return cls(
            id=data["id"],
            status=data["status"],
            created_at=data["created_at"],
            jobs=tuple(Job.from_dict(job) for job in data.get("jobs", ())),
            rejected=tuple(
                Rejected(item["filename"], _known(JobError, item["error"]), item.get("index"))
                for item in data.get("rejected", ())
            ),
            counts=dict(data.get("counts", {})),
            total=data.get("total", 0),
            input_bytes=data.get("input_bytes", 0),
            output_bytes=data.get("output_bytes", 0),
            saved_bytes=data.get("saved_bytes", 0),
            callback_url=data.get("callback_url"),
        )


@dataclass(frozen=True)
class Event:
    """One server-sent event: its name (a job status, `deleted`, `job` or `batch`), id and data."""

    name: str
    id: str
    data: dict[str, Any]

    @property
    def job(self) -> Job | None:
        """The job resource the event carries, if it carries one."""
        return Job.from_dict(self.data) if "input" in self.data else None


class EventParser:
    """Turns the lines of a text/event-stream into Events; comment lines (pings) are skipped."""

    def __init__(self) -> None:
        self.name, self.id, self.data = "message", "", list[str]()

    def feed(self, line: str) -> Event | None:
        """The event a blank line completes, else None."""
        if line == "":
            event = None
            if self.data:
                event = Event(self.name, self.id, json.loads("\n".join(self.data)))
            self.name, self.id, self.data = "message", "", []
            return event
        if not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                self.name = value
            elif field == "id":
                self.id = value
            elif field == "data":
                self.data.append(value)
        return None


_Part = TypeVar("_Part", InputInfo, OutputInfo, JobError)


def _known(cls: type[_Part], data: Mapping[str, Any]) -> _Part:
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})
