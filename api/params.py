"""The query parameters and form fields each route reads, declared once: uploads refuse any other
name (400), the OpenAPI document lists exactly these, and code reading an undeclared name fails."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request

from shared.errors import BadOption
from shared.options import FIELDS, unknown_option

JSON = dict[str, Any]
Place = Literal["query", "form"]
QUERY: Place = "query"
FORM: Place = "form"
_PLACE_NAMES = {QUERY: "the query string", FORM: "the form"}

#: The longest a client may hold a request open with ?wait=N.
MAX_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Param:
    """One name a route reads from its query string or its form, as the document describes it."""

    name: str
    description: str
    schema: JSON
    places: tuple[Place, ...] = (QUERY, FORM)
    required: bool = False


OPTIONS = tuple(Param(name, spec.description, spec.schema) for name, spec in FIELDS.items())
WAIT = Param(
    "wait",
    f"Seconds (0-{MAX_WAIT_SECONDS:g}) to hold the request until the job finishes or fails.",
    {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
    (QUERY,),
)
FILENAME = Param(
    "filename",
    "The display name of a raw upload (else the one in `Content-Disposition`).",
    {"type": "string"},
    (QUERY,),
)
CALLBACK_URL = Param(
    "callback_url",
    "A public `http(s)` URL the resource is POSTed to, signed, once the job (or every job of the "
    "batch) has ended.",
    {"type": "string", "format": "uri"},
)
ARCHIVE_JOB = Param(
    "job",
    "A job id whose finished output goes into the ZIP; repeat it for each job, in the order wanted.",
    {"type": "array", "items": {"type": "string"}},
    (QUERY,),
    required=True,
)
#: The original app's quality field: required, a whole number from 20 to 100.
TUTORIAL_QUALITY = Param(
    "quality",
    "Encoder quality from 20 to 100 (required, as in the original app).",
    {"type": "integer", "minimum": 20, "maximum": 100},
    (FORM,),
    required=True,
)


@dataclass(frozen=True)
class Accepted:
    """What one route reads besides its path; a `strict` route refuses every other name."""

    params: tuple[Param, ...]
    strict: bool = True

    def names(self, place: Place | None = None) -> frozenset[str]:
        """The names read from `place` (from either, if None)."""
        return frozenset(p.name for p in self.params if place is None or place in p.places)

    def takes(self, param: Param) -> bool:
        """Whether this route reads `param`."""
        return param in self.params


JOB_UPLOAD = Accepted((*OPTIONS, WAIT, FILENAME, CALLBACK_URL))
BATCH_UPLOAD = Accepted((*OPTIONS, CALLBACK_URL))
#: A variant of a stored upload takes options only, in the query or the form.
VARIANT = Accepted(OPTIONS)
TUTORIAL_UPLOAD = Accepted(
    (
        TUTORIAL_QUALITY,
        *(Param(o.name, o.description, o.schema, (FORM,)) for o in OPTIONS if o.name != "quality"),
    )
)
#: Reads ignore names they do not know: a cache-busting `?t=` must not break a GET.
JOB_READ = Accepted((WAIT,), strict=False)
#: An archive of named jobs: `job`, repeated.
ARCHIVE = Accepted((ARCHIVE_JOB,), strict=False)


class UndeclaredParameter(LookupError):
    """Raised when code reads a name its route does not declare here: a bug, never the client's."""


class Fields(Mapping[str, str]):
    """The values a request sent to one route, readable only by the names that route declares."""

    def __init__(self, values: Mapping[str, str], accepted: Accepted) -> None:
        self._declared = accepted.names()
        self._values = {name: value for name, value in values.items() if name in self._declared}

    def __getitem__(self, name: str) -> str:
        if name not in self._declared:
            raise UndeclaredParameter(f"{name!r} is read but not declared for this route in api.params")
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def refuse_unknown(accepted: Accepted, place: Place, names: Iterable[str]) -> None:
    """Raise BadOption for the first name `accepted` does not read from `place`."""
    allowed = accepted.names(place)
    for name in names:
        if name in allowed:
            continue
        if name in accepted.names():
            other = FORM if place == QUERY else QUERY
            raise BadOption(f"'{name}' goes in {_PLACE_NAMES[other]} here, not in {_PLACE_NAMES[place]}.")
        raise unknown_option(name, allowed)


def read(accepted: Accepted, query: Mapping[str, str], form: Mapping[str, str] | None = None) -> Fields:
    """A route's values from its query and form (a form field wins); unknown names are refused
    with BadOption when the route is strict."""
    if accepted.strict:
        refuse_unknown(accepted, QUERY, query)
        if form is not None:
            refuse_unknown(accepted, FORM, form)
    return Fields({**query, **(form or {})}, accepted)


def query_list(request: Request, accepted: Accepted, param: Param) -> list[str]:
    """Every value of a repeated query parameter the route declares, in the order sent."""
    if not accepted.takes(param):
        raise UndeclaredParameter(f"{param.name!r} is read but not declared for this route in api.params")
    return request.query_params.getlist(param.name)


def query(request: Request, accepted: Accepted) -> Fields:
    """The request's query parameters for a route (read())."""
    return read(accepted, request.query_params)


async def query_and_form(request: Request, accepted: Accepted, *, max_fields: int) -> Fields:
    """The request's query parameters and the text fields of its form (no files) for a route (read())."""
    async with request.form(max_files=0, max_fields=max_fields) as form:
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
    return read(accepted, request.query_params, fields)
