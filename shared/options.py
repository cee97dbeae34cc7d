"""Compression options a client may set on a job, parsed and validated in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from shared.errors import BadOption

DEFAULT_QUALITY = 80


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
    def parse(cls, raw: Mapping[str, str], *, min_quality: int = 1) -> Options:
        """Build options from request fields (form or query); raises BadOption on a bad value."""
        quality = DEFAULT_QUALITY
        if raw.get("quality", "") != "":
            quality = _integer("quality", raw["quality"], min_quality, 100)
        return cls(quality=quality)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form, as stored in the job record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Options:
        """Inverse of to_dict()."""
        return cls(**data)
