"""Choosing a quality: the lowest that meets a perceptual target, or the highest that fits a size
(docs/design.md, "The quality search")."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from shared.errors import CannotFit
from shared.options import DEFAULT_EFFORT
from worker import codecs
from worker.metric import Reference

#: Named perceptual targets (SSIMULACRA2: 90 visually lossless, 70 medium, 50 low).
TARGETS: dict[str, float] = {"high": 80.0, "medium": 70.0, "low": 60.0}
#: Most trials one search may spend (the typical search needs 3 or 4).
MAX_TRIALS = 6
#: Most checked encodes the slow final AVIF speed may spend after the fast search.
MAX_FINAL_TRIALS = 3
#: Secant steps aim this far above the target, so that the first step down usually still passes.
MARGIN = 0.25
#: A 4:2:0 JPEG needing this quality or more to meet its target is also tried in 4:4:4.
FULL_CHROMA_FROM = 90
#: Warm start per format: the quality that meets 70 on a typical photo, and score points per step
#: ("jpeg" is 4:2:0 on Pillow's quality scale, see `codecs.TABLE_QUALITY`; "jpeg-444" libjpeg-turbo's 4:4:4).
_START: dict[str, tuple[int, float]] = {
    "jpeg": (70, 0.45),
    "jpeg-444": (75, 0.6),
    "webp": (75, 0.45),
    "avif": (57, 0.6),
}


@dataclass(frozen=True)
class Choice:
    """An encoded output and how it was chosen."""

    data: bytes
    #: The quality used; None when the upload's own pixels were kept (lossless fallback).
    quality: int | None
    score: float | None = None
    trials: int = 0


@dataclass
class _Search:
    """The qualities tried so far for one image, encoder and target, with their scores."""

    reference: Reference
    encode: Callable[[int], bytes]
    target: float
    scores: dict[int, float] = field(default_factory=dict)
    outputs: dict[int, bytes] = field(default_factory=dict)

    def measure(self, quality: int) -> float:
        self.outputs[quality] = self.encode(quality)
        with Image.open(io.BytesIO(self.outputs[quality])) as decoded:
            self.scores[quality] = self.reference.score(decoded)
        return self.scores[quality]

    def lowest_passing(self) -> int | None:
        return min((q for q, s in self.scores.items() if s >= self.target), default=None)

    def untried(self) -> tuple[int, int]:
        """The range that may still hold a lower passing quality (empty when the answer is known)."""
        failing = max((q for q, s in self.scores.items() if s < self.target), default=0)
        return failing + 1, (self.lowest_passing() or 101) - 1

    def run(self, quality: int, slope: float, budget: int) -> float:
        """Secant steps from `quality` until the lowest passing quality is known or `budget` is spent."""
        score = self.measure(quality)
        for _ in range(budget - 1):
            low, high = self.untried()
            if low > high:
                break
            near = sorted(self.scores.items(), key=lambda item: abs(item[1] - self.target))[:2]
            if len(near) == 2 and near[0][0] != near[1][0] and near[0][1] != near[1][1]:
                (q1, s1), (q2, s2) = near
                slope = max(0.1, (s2 - s1) / (q2 - q1))
            step = (self.target + MARGIN - score) / slope
            quality = min(high, max(low, quality + (math.ceil(step) if step > 0 else math.floor(step))))
            score = self.measure(quality)
        return slope


def for_target(
    image: Image.Image,
    fmt: str,
    target: float,
    metadata: codecs.Metadata,
    reference: Reference | None = None,
    effort: str = DEFAULT_EFFORT,
) -> Choice:
    """The lowest quality of a lossy `fmt` whose output scores at least `target` against `image`,
    with the encoders `effort` chooses."""
    reference = reference or Reference(image)
    search = _Search(reference, codecs.trial_encoder(image, fmt, metadata, effort), target)
    chosen, slope = _lowest(search, fmt, target)
    if fmt == "jpeg":
        return _jpeg(image, target, metadata, search, chosen, effort)
    trials = len(search.scores)
    speed = codecs.avif_speed(image.size, effort) if fmt == "avif" else None
    if speed is None or speed == codecs.AVIF_PROBE_SPEED:  # the trials were the final encodes
        return Choice(search.outputs[chosen], chosen, search.scores[chosen], trials)
    # A slower AVIF speed meets the same score a few steps lower: refine, checking each encode.
    refine = _Search(
        reference, lambda quality: codecs.encode(image, fmt, quality, metadata, effort, speed), target
    )
    refine.run(max(1, chosen - codecs.AVIF_COSTS[speed][1]), slope, MAX_FINAL_TRIALS)
    trials += len(refine.scores)
    better = refine.lowest_passing()
    if better is None:  # the fast encoder's choice is known to pass
        return Choice(search.outputs[chosen], chosen, search.scores[chosen], trials)
    return Choice(refine.outputs[better], better, refine.scores[better], trials)


def _lowest(search: _Search, fmt: str, target: float) -> tuple[int, float]:
    """Search from the format's warm start: the lowest passing quality (else the best) and the slope."""
    start, slope = _START[fmt]
    slope = search.run(min(100, max(1, round(start + (target - 70.0) / slope))), slope, MAX_TRIALS)
    if search.lowest_passing() is None and 100 not in search.scores:
        search.measure(100)
    chosen = search.lowest_passing()
    if chosen is None:  # not even quality 100 meets the target: the best score there is
        chosen = max(search.scores, key=lambda q: (search.scores[q], q))
    return chosen, slope


def _jpeg(
    image: Image.Image, target: float, metadata: codecs.Metadata, search: _Search, chosen: int, effort: str
) -> Choice:
    """The JPEG for a 4:2:0 search's choice, or a 4:4:4 one where 4:2:0 needed a very high quality.

    Saturated colour detail is blurred by 4:2:0 at any quality (one such photo needs q98 at 4:2:0,
    q77 at 4:4:4), so when 4:2:0 needs FULL_CHROMA_FROM or more, 4:4:4 is searched too and the
    smaller output that meets the target wins.
    """
    trials = len(search.scores)
    data = codecs.finish_jpeg(search.outputs[chosen], metadata)
    subsampled = Choice(data, chosen, search.scores[chosen], trials)
    if chosen < FULL_CHROMA_FROM and search.scores[chosen] >= target:
        return subsampled
    full = _Search(search.reference, codecs.trial_encoder(image, "jpeg", metadata, effort, True), target)
    level, _ = _lowest(full, "jpeg-444", target)
    trials += len(full.scores)
    data = codecs.finish_jpeg(full.outputs[level], metadata)
    candidates = [Choice(data, level, full.scores[level]), subsampled]
    best = min(candidates, key=lambda choice: _rank(choice, target))
    return Choice(best.data, best.quality, best.score, trials)


def _rank(choice: Choice, target: float) -> tuple[int, float]:
    """Sort key: passing before failing; then fewer bytes if passing, else the higher score."""
    score = choice.score or 0.0
    return (0, len(choice.data)) if score >= target else (1, -score)


def for_size(
    image: Image.Image | codecs.Animation,
    fmt: str,
    max_bytes: int,
    ceiling: int,
    metadata: codecs.Metadata,
    effort: str = DEFAULT_EFFORT,
) -> Choice:
    """The highest quality up to `ceiling` whose output with the `effort`'s encoders has at most
    `max_bytes`; CannotFit if none.

    A still AVIF whose final speed is slower than the probe speed is searched at the probe speed,
    then encoded at its own near that quality (at most MAX_FINAL_TRIALS encodes; the probe's
    output, which fits, if none of them does): a third of the CPU of searching at the final speed.
    """
    still = image if fmt == "avif" and isinstance(image, Image.Image) else None
    speed = codecs.AVIF_PROBE_SPEED if still is None else codecs.avif_speed(still.size, effort)
    if still is None or speed == codecs.AVIF_PROBE_SPEED:
        found = _highest_fitting(_sized_encoder(image, fmt, metadata, effort), max_bytes, ceiling)
    else:
        probe = _highest_fitting(
            lambda quality: codecs.encode(still, fmt, quality, metadata, effort, codecs.AVIF_PROBE_SPEED),
            max_bytes,
            ceiling,
        )
        found = probe and _final_avif(still, probe, max_bytes, ceiling, metadata, effort, speed)
    if found is None:
        raise CannotFit(
            f"Even the lowest quality does not fit in max_bytes={max_bytes:,}: try a larger limit, "
            "a smaller width/height, or another format."
        )
    return found


def _highest_fitting(encode: Callable[[int], bytes], max_bytes: int, ceiling: int) -> Choice | None:
    """Binary search for the highest quality up to `ceiling` whose output has at most `max_bytes`."""
    low, high = 1, ceiling
    found: Choice | None = None
    trials = 0
    while low <= high:
        quality = (low + high) // 2
        data = encode(quality)
        trials += 1
        if len(data) <= max_bytes:
            found = Choice(data, quality, trials=trials)
            low = quality + 1
        else:
            high = quality - 1
    return found


def _final_avif(
    image: Image.Image,
    probe: Choice,
    max_bytes: int,
    ceiling: int,
    metadata: codecs.Metadata,
    effort: str,
    speed: int,
) -> Choice:
    """The AVIF at its final `speed` at the highest quality near the probe's that fits (up while
    it fits, down while it does not), else the probe's output."""
    assert probe.quality is not None
    quality, best = probe.quality, None
    for trial in range(1, MAX_FINAL_TRIALS + 1):
        data = codecs.encode(image, "avif", quality, metadata, effort, speed)
        if len(data) <= max_bytes:
            best = Choice(data, quality, trials=probe.trials + trial)
            quality += 1
        elif best is None:
            quality -= 1
        else:
            break
        if not 1 <= quality <= ceiling:
            break
    return best or probe


def _sized_encoder(
    image: Image.Image | codecs.Animation, fmt: str, metadata: codecs.Metadata, effort: str
) -> Callable[[int], bytes]:
    """The output at a quality for `for_size`. A still JPEG is made by the search's trial encoder
    (its pixels prepared once; at `max` not matched to Pillow's score per trial, since the
    search already moves over quality numbers), with its metadata, which counts in the size."""
    if fmt == "jpeg" and isinstance(image, Image.Image):
        trial = codecs.trial_encoder(image, fmt, metadata, effort)
        return lambda quality: codecs.finish_jpeg(trial(quality), metadata)
    return lambda quality: codecs.encode(image, fmt, quality, metadata, effort)
