"""Compression options a client may set on a job, parsed and validated in one place.

`FIELDS` describes each option for clients (the OpenAPI document and the docs page are built
from it); a test checks it has one entry per `Options` field, so a new option cannot go
undocumented.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from shared.errors import BadOption

DEFAULT_QUALITY = 80
MIN_QUALITY = 1
MAX_QUALITY = 100


@dataclass(frozen=True)
class OptionField:
    """How one option is described to clients: a sentence and its JSON Schema."""

    description: str
    schema: dict[str, Any]


#: One entry per Options field, in the same order.
FIELDS: dict[str, OptionField] = {
    "quality": OptionField(
        "JPEG and WebP encoder quality; PNG and GIF stay lossless.",
        {"type": "integer", "minimum": MIN_QUALITY, "maximum": MAX_QUALITY, "default": DEFAULT_QUALITY},
    ),
}


def _integer(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadOption(f"'{name}' must be a whole number from {low} to {high}.") from None
    if not low <= value <= high:
        raise BadOption(f"'{name}' must be from {low} to {high}, not {value}.")
    return value


@dataclass(frozen=True)
class Options:
    """How a job should compress its image."""

    quality: int = DEFAULT_QUALITY

    @classmethod
    def parse(cls, raw: Mapping[str, str], *, min_quality: int = MIN_QUALITY) -> Options:
        """Build options from request fields (form or query); raises BadOption on a bad value."""
        quality = DEFAULT_QUALITY
        if raw.get("quality", "") != "":
            quality = _integer("quality", raw["quality"], min_quality, MAX_QUALITY)
        return cls(quality=quality)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form, as stored in the job record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Options:
        """Inverse of to_dict()."""
        return cls(**data)
