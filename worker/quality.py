"""Choosing a quality: the lowest one that meets a perceptual target, or the highest that fits a size.

The target search measures real SSIMULACRA2 (`worker.metric.Reference`, ~14x faster than the
reference package and equal to it), so a chosen quality meets its target by construction; what
keeps it cheap is few trials: a warm start from a per-format calibration, then secant steps on
the measured slope, stopping as soon as a passing quality is within `TOLERANCE` of the target.
JPEG trials use jpegli alone; mozjpeg's lossless pass (same pixels) runs once, on the winner.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import pyjpegli
from PIL import Image

from shared.errors import CannotFit
from worker import codecs
from worker.metric import Reference

#: Named perceptual targets (SSIMULACRA2: 90 visually lossless, 70 medium, 50 low).
TARGETS: dict[str, float] = {"high": 80.0, "medium": 70.0, "low": 60.0}
#: Stop searching once a passing quality scores less than this above the target.
TOLERANCE = 2.0
#: At most this many trials go on refining once a passing quality is known.
MAX_TRIALS = 4
#: Warm start per format: the quality that meets 70 on a typical photo, and score points per step.
_START: dict[str, tuple[int, float]] = {"jpeg": (72, 0.6), "webp": (75, 0.45), "avif": (65, 0.45)}


@dataclass(frozen=True)
class Choice:
    """An encoded output and how it was chosen."""

    data: bytes
    #: The quality used; None when the upload's own pixels were kept (lossless fallback).
    quality: int | None
    score: float | None = None
    trials: int = 0


def _trial_encoder(image: Image.Image, fmt: str, metadata: codecs.Metadata) -> Callable[[int], bytes]:
    """Bytes whose pixels are those of the final output at a quality (cheaper for JPEG)."""
    if fmt == "jpeg":
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return lambda quality: bytes(pyjpegli.encode(rgb.tobytes(), rgb.width, rgb.height, quality))
    return lambda quality: codecs.encode(image, fmt, quality, metadata)


def for_target(image: Image.Image, fmt: str, target: float, metadata: codecs.Metadata) -> Choice:
    """The lowest quality of a lossy `fmt` whose output scores at least `target` against `image`."""
    reference = Reference(image)
    encode = _trial_encoder(image, fmt, metadata)
    scores: dict[int, float] = {}
    outputs: dict[int, bytes] = {}

    def measure(quality: int) -> float:
        outputs[quality] = encode(quality)
        with Image.open(io.BytesIO(outputs[quality])) as decoded:
            scores[quality] = reference.score(decoded)
        return scores[quality]

    start, slope = _START[fmt]
    quality = min(100, max(1, round(start + (target - 70.0) / slope)))
    score = measure(quality)
    while True:
        passing = [q for q, s in scores.items() if s >= target]
        failing = [q for q, s in scores.items() if s < target]
        low = max(failing, default=0) + 1
        high = min(passing, default=101) - 1
        best = min(passing, default=None)
        if best is not None and (scores[best] - target < TOLERANCE or len(scores) >= MAX_TRIALS):
            break
        if low > high:
            break
        # Secant step from the nearest measurements, aiming half a point above the target.
        if len(scores) >= 2:
            (q1, s1), (q2, s2) = sorted(scores.items(), key=lambda item: abs(item[1] - target))[:2]
            if q1 != q2 and s1 != s2:
                slope = max(0.1, (s2 - s1) / (q2 - q1))
        step = (target + 0.5 - score) / slope
        quality = quality + (math.ceil(step) if step > 0 else math.floor(step))
        quality = min(high, max(low, quality))
        score = measure(quality)
    chosen = min(q for q, s in scores.items() if s >= target) if passing else 100
    if chosen not in scores:
        measure(chosen)
    data = outputs[chosen] if fmt != "jpeg" else codecs.encode(image, fmt, chosen, metadata)
    return Choice(data, chosen, scores[chosen], len(scores))


def for_size(
    image: Image.Image | codecs.Animation, fmt: str, max_bytes: int, ceiling: int, metadata: codecs.Metadata
) -> Choice:
    """The highest quality up to `ceiling` whose output has at most `max_bytes`; CannotFit if none."""
    low, high = 1, ceiling
    found: Choice | None = None
    trials = 0
    while low <= high:
        quality = (low + high) // 2
        data = codecs.encode(image, fmt, quality, metadata)
        trials += 1
        if len(data) <= max_bytes:
            found = Choice(data, quality, trials=trials)
            low = quality + 1
        else:
            high = quality - 1
    if found is None:
        raise CannotFit(
            f"Even the lowest quality does not fit in max_bytes={max_bytes:,}: try a larger limit, "
            "a smaller width/height, or another format."
        )
    return found
