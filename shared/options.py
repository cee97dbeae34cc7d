"""Compression options a client may set on a job, parsed and validated in one place; `FIELDS`
describes each for clients (OpenAPI, docs), one entry per `Options` field."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
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


def _integer(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadOption(f"'{name}' must be a whole number from {low} to {high}.") from None
    if not low <= value <= high:
        raise BadOption(f"'{name}' must be from {low} to {high}, not {value}.")
    return value


#: Values of the `format` option: `same` keeps the input's format, `auto` picks the smallest.
FORMATS = ("same", "jpeg", "png", "webp", "avif", "auto")
#: Named perceptual targets for quality=auto (SSIMULACRA2 scores; worker.quality holds the numbers).
TARGETS = ("high", "medium", "low")
FITS = ("scale-down", "contain", "cover")
METADATA = ("strip", "keep")
#: Values of the `effort` option: how much encoder time to spend for fewer bytes.
EFFORTS = ("fast", "balanced", "max")
DEFAULT_EFFORT = "balanced"
#: The largest width or height a client may ask for.
MAX_SIDE = 16384


#: One entry per Options field, in the same order.
FIELDS: dict[str, OptionField] = {
    "quality": OptionField(
        "Encoder quality 1-100, or `auto`: the lowest quality whose output meets `target`. "
        "For PNG output, below 100 means palette quantisation when it stays above the target.",
        {
            "oneOf": [
                {"type": "integer", "minimum": MIN_QUALITY, "maximum": MAX_QUALITY},
                {"type": "string", "enum": ["auto"]},
            ],
            "default": DEFAULT_QUALITY,
        },
    ),
    "format": OptionField(
        "Output format: `same` keeps the input's, `auto` picks the smallest acceptable one.",
        {"type": "string", "enum": list(FORMATS), "default": "same"},
    ),
    "target": OptionField(
        "Perceptual target for quality=auto and PNG quantisation (SSIMULACRA2 high 80, medium 70, low 60).",
        {"type": "string", "enum": list(TARGETS), "default": "medium"},
    ),
    "max_bytes": OptionField(
        "The largest output wanted: the best quality that fits (with `quality=auto`, the target's "
        "quality when it fits), or 422 if none does.",
        {"type": "integer", "minimum": 100},
    ),
    "width": OptionField(
        "Largest output width in pixels.", {"type": "integer", "minimum": 1, "maximum": MAX_SIDE}
    ),
    "height": OptionField(
        "Largest output height in pixels.", {"type": "integer", "minimum": 1, "maximum": MAX_SIDE}
    ),
    "fit": OptionField(
        "How width/height apply: `scale-down` (fit inside, never enlarge), `contain`, `cover` (crop).",
        {"type": "string", "enum": list(FITS), "default": "scale-down"},
    ),
    "metadata": OptionField(
        "`strip` (all but the ICC profile) or `keep` (EXIF without GPS, ICC, XMP copyright).",
        {"type": "string", "enum": list(METADATA), "default": "strip"},
    ),
    "effort": OptionField(
        "Encoder effort: `fast` spends about what Pillow's encoder spends, `max` the most time for the "
        "fewest bytes, `balanced` in between.",
        {"type": "string", "enum": list(EFFORTS), "default": DEFAULT_EFFORT},
    ),
}


def unknown_option(name: str, known: Collection[str]) -> BadOption:
    """The error for a name no route reads, with the closest known name when one is close."""
    shown = name[:40]
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.7)
    if close:
        return BadOption(f"Unknown option '{shown}'; did you mean '{close[0]}'?")
    return BadOption(f"Unknown option '{shown}'; this route takes {', '.join(sorted(known))}.")


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in allowed:
        raise BadOption(f"'{name}' must be one of {', '.join(allowed)}; not '{raw[:40]}'.")
    return value


@dataclass(frozen=True)
class Options:
    """How a job should compress its image."""

    #: 1-100, or None for quality=auto (the lowest quality that meets `target`).
    quality: int | None = DEFAULT_QUALITY
    format: str = "same"
    target: str = "medium"
    max_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    fit: str = "scale-down"
    metadata: str = "strip"
    effort: str = DEFAULT_EFFORT

    @classmethod
    def parse(cls, raw: Mapping[str, str], *, min_quality: int = MIN_QUALITY) -> Options:
        """Build options from request fields (form or query); raises BadOption on a bad value."""

        def given(name: str) -> bool:
            return raw.get(name, "").strip() != ""

        quality: int | None = DEFAULT_QUALITY
        if given("quality"):
            if raw["quality"].strip().lower() == "auto":
                quality = None
            else:
                quality = _integer("quality", raw["quality"], min_quality, MAX_QUALITY)
        return cls(
            quality=quality,
            format=_choice("format", raw["format"], FORMATS) if given("format") else "same",
            target=_choice("target", raw["target"], TARGETS) if given("target") else "medium",
            max_bytes=_integer("max_bytes", raw["max_bytes"], 100, 2**40) if given("max_bytes") else None,
            width=_integer("width", raw["width"], 1, MAX_SIDE) if given("width") else None,
            height=_integer("height", raw["height"], 1, MAX_SIDE) if given("height") else None,
            fit=_choice("fit", raw["fit"], FITS) if given("fit") else "scale-down",
            metadata=_choice("metadata", raw["metadata"], METADATA) if given("metadata") else "strip",
            effort=_choice("effort", raw["effort"], EFFORTS) if given("effort") else DEFAULT_EFFORT,
        )

    @property
    def changes_format_or_size(self) -> bool:
        """True if the client asked for another format or size (then the output may be larger)."""
        return self.format != "same" or self.width is not None or self.height is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form, as stored in the job record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Options:
        """Inverse of to_dict()."""
        return cls(**data)
