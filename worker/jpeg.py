"""JPEG encoding: the quantisation tables, the quality-number mapping and the encoders each
`effort` names (docs/compression.md, "Effort")."""

from __future__ import annotations

import functools
import io
import itertools
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jpeglib
import numpy as np
import numpy.typing as npt
import pyjpegli
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from worker import ycc
from worker.metric import Reference

#: The libjpeg build of `jpeglib` that trellis JPEGs are written with: mozjpeg 4.0.3.
MOZJPEG = "mozjpeg403"
#: mozjpeg's switches: optimal Huffman codes, trellis quantisation of AC and DC coefficients,
#: deringing of hard edges (its defaults too, named so that a change of default cannot creep in).
#: Its default profile also makes the file progressive with a searched scan script.
MOZJPEG_FLAGS = ["+OPTIMIZE_CODING", "+TRELLIS_QUANT", "+TRELLIS_QUANT_DC", "+OVERSHOOT_DERINGING"]
#: jpegli's luma steps are scaled from 1 - LUMA_TILT/2 at DC to 1 + LUMA_TILT/2 at the highest
#: frequency, and its chroma steps by CHROMA_SCALE; then each encoder's `SHAPES`.
LUMA_TILT = 0.45
CHROMA_SCALE = 0.9
#: Per encoder, the factor on the luma and on the chroma steps of each frequency band, a band
#: being the row + column of the step in the 8x8 table (0 is DC, 14 the highest frequency):
#: the factors that gave the fewest bytes at Pillow q75's SSIMULACRA2 on the tuning photos
#: (coordinate descent in steps of 4-10 %, on single bands and on runs of them). Both
#: libjpeg-turbo encoders code the same coefficients; trellis quantisation drops costly
#: coefficients itself and wants other steps.
_TURBO_SHAPE = (
    (0.737, 1.0, 1.22, 1.396, 1.269, 1.269, 1.269, 1.269, 1.396, 1.535, 1.423, 1.423, 1.423, 1.423, 1.423),
    (0.55, 1.0, 0.909, 1.22, 1.22, 1.269, 1.269, 1.269, 1.269, 1.269, 1.166, 1.166, 1.166, 1.166, 1.166),
)
SHAPES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "turbo": _TURBO_SHAPE,
    "optimized": _TURBO_SHAPE,
    "trellis": (
        (0.82, 0.82, 1.342, 1.342, 1.342, 1.22, 1.22, 1.22, 1.22, 1.22, 1.0, 1.0, 1.0, 1.0, 1.0),
        (0.82, 1.0, 1.0, 1.1, 1.1, 1.1, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
    ),
}
#: Sampling factors (vertical, horizontal) of Y, Cb and Cr: chroma halved both ways (4:2:0).
_SUBSAMPLED = np.array([[2, 2], [1, 1], [1, 1]])
#: The table quality each encoder needs to score what Pillow's JPEG (libjpeg's scale, what
#: users know) scores at a quality number, as (quality number, table quality) points joined by
#: straight lines: the median of six tuning photos' own points (Kodak 01, 03, 05, wiki002, 004,
#: 007), `scripts/calibrate_jpeg.py`.
_TURBO_POINTS = (
    (1, 1), (10, 1), (20, 7), (30, 17), (40, 24), (50, 34), (60, 48), (70, 64), (75, 70), (80, 78),
    (85, 84), (90, 89), (95, 95), (98, 99), (100, 100),
)  # fmt: skip
TABLE_QUALITY: dict[str, tuple[tuple[int, int], ...]] = {
    "turbo": _TURBO_POINTS,
    "optimized": _TURBO_POINTS,
    "trellis": (
        (1, 1), (10, 1), (20, 10), (30, 21), (40, 32), (50, 46), (60, 56), (70, 68), (75, 73), (80, 80),
        (85, 84), (90, 90), (95, 95), (98, 98), (100, 100),
    ),
}  # fmt: skip
#: At `max`, a fixed quality number is matched per image: the search aims this far above the
#: score of Pillow's JPEG at that number (our metric and the reference package differ in the
#: third decimal), ...
MATCH_MARGIN = 0.03
#: ... stops once it knows the table quality within this many levels (~0.5 % of the bytes), ...
MATCH_PRECISION = 0.2
#: ... and spends at most this many encodes before climbing to a passing table quality.
MATCH_TRIALS = 7
#: The match is run again with the chroma steps scaled by each of these (photos differ in how
#: much their colour costs); the fewest bytes that pass are kept.
MATCH_CHROMA = (0.85, 1.18)
#: Those further matches start from the first one's table quality and slope: fewer trials.
MATCH_CHROMA_TRIALS = 4
#: A larger image is matched on a sample (tiles from across it, about this many pixels) and
#: then encoded once at the table quality found, so the match costs the same at any size.
MATCH_SAMPLE_PIXELS = 1_000_000
#: The side of the sample's square tiles, in pixels (whole 16-pixel blocks of 4:2:0).
SAMPLE_TILE = 256


def table_quality(encoder: str, quality: int) -> int:
    """The quality of `jpeg_tables` that `encoder` uses for a quality number (`TABLE_QUALITY`)."""
    points = TABLE_QUALITY[encoder]
    for (q1, t1), (q2, t2) in itertools.pairwise(points):
        if q1 <= quality <= q2:
            return min(100, max(1, round(t1 + (t2 - t1) * (quality - q1) / (q2 - q1))))
    return min(100, max(1, quality))


@functools.lru_cache(maxsize=200)
def jpeg_tables(quality: int, encoder: str = "turbo") -> npt.NDArray[np.uint16]:
    """The luma and chroma quantisation tables (natural order) `encoder` uses at table quality
    `quality` (1-100): jpegli's for that quality (they do not depend on the image: read from a
    tiny encode), tilted, scaled and shaped (`SHAPES`), kept to baseline JPEG's 8-bit steps."""
    return np.clip(np.round(_shaped(quality, encoder)), 1, 255).astype(np.uint16)


def blended_tables(level: float, encoder: str, chroma: float = 1.0) -> npt.NDArray[np.uint16]:
    """Tables between two table qualities: each step the geometric blend of its two neighbours;
    the chroma steps then scaled by `chroma`."""
    low = min(99, max(1, math.floor(level)))
    weight = min(1.0, max(0.0, level - low))
    steps = np.exp((1 - weight) * np.log(_shaped(low, encoder)) + weight * np.log(_shaped(low + 1, encoder)))
    steps[1] *= chroma
    return np.clip(np.round(steps), 1, 255).astype(np.uint16)


@functools.lru_cache(maxsize=200)
def _shaped(quality: int, encoder: str) -> npt.NDArray[np.float64]:
    with JpegImageFile(io.BytesIO(bytes(pyjpegli.encode(bytes(8 * 8 * 3), 8, 8, quality)))) as probe:
        # Pillow reads the DQT segments into natural (row-major) order.
        luma, chroma = (np.array(probe.quantization[k], dtype=np.float64).reshape(8, 8) for k in (0, 1))
    band = np.add.outer(np.arange(8), np.arange(8))  # row + column of each step
    luma_shape, chroma_shape = (np.array(factors) for factors in SHAPES[encoder])
    luma = luma * (1.0 + LUMA_TILT * (band / 14.0 - 0.5)) * luma_shape[band]
    chroma = chroma * CHROMA_SCALE * chroma_shape[band]
    return np.stack([luma, chroma])


def encode(rgb: Image.Image, quality: int, encoder: str, full_chroma: bool = False) -> bytes:
    """A JPEG without metadata at a quality number: 4:2:0 on `jpeg_tables` by `encoder`
    ("turbo": libjpeg-turbo, baseline; "optimized": the same with optimal Huffman codes;
    "trellis": mozjpeg's trellis quantisation, progressive); with `full_chroma`, libjpeg-turbo
    4:4:4 on its own tables, coded as `encoder` codes."""
    if full_chroma:
        return _turbo(rgb, encoder, quality=quality, subsampling="4:4:4")
    if encoder == "trellis":
        return mozjpeg(rgb, jpeg_tables(table_quality(encoder, quality), encoder))
    tables = _qtables(table_quality(encoder, quality), encoder)
    return _turbo(rgb, encoder, qtables=tables, subsampling="4:2:0")


def _turbo(rgb: Image.Image, encoder: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    # Pillow writes the image's own comment unless told otherwise: an upload's payload must not pass.
    params.update(optimize=encoder != "turbo", progressive=encoder == "trellis")
    rgb.save(buffer, "JPEG", comment=b"", **params)
    return buffer.getvalue()


@functools.lru_cache(maxsize=100)
def _qtables(level: int, encoder: str) -> list[list[int]]:
    """`jpeg_tables` as the lists Pillow's `qtables` takes (natural order)."""
    return [[int(step) for step in table.flatten()] for table in jpeg_tables(level, encoder)]


def trials(rgb: Image.Image, encoder: str, full_chroma: bool = False) -> Callable[[int], bytes]:
    """`encode` at any quality number for one image, the work shared between encodes done once."""
    if encoder == "trellis" and not full_chroma:
        pixels = ycc.compensated(rgb)
        return lambda quality: mozjpeg(pixels, jpeg_tables(table_quality(encoder, quality), encoder))
    return lambda quality: encode(rgb, quality, encoder, full_chroma)


def mozjpeg(rgb: Image.Image | npt.NDArray[np.uint8], tables: npt.NDArray[np.uint16]) -> bytes:
    """mozjpeg's 4:2:0 encode with trellis quantisation on the given luma and chroma tables, of
    an image or of its `ycc.compensated` YCbCr (computed here if not given)."""
    pixels = ycc.compensated(rgb) if isinstance(rgb, Image.Image) else rgb
    # The pixels are already JPEG's YCbCr: mozjpeg only averages the chroma.
    picture = jpeglib.from_spatial(pixels, jpeglib.JCS_YCbCr)
    picture.jpeg_color_space = jpeglib.JCS_YCbCr
    picture.samp_factor = _SUBSAMPLED
    # jpeglib writes only to a file (its C code opens the path itself).
    with tempfile.TemporaryDirectory(prefix="imgpress-jpeg-") as folder, jpeglib.version(MOZJPEG):
        path = Path(folder) / "out.jpg"
        picture.write_spatial(str(path), qt=tables, flags=MOZJPEG_FLAGS)
        return path.read_bytes()


def matched(rgb: Image.Image, quality: int) -> bytes:
    """mozjpeg's trellis JPEG with the fewest bytes whose SSIMULACRA2 is at least what Pillow's
    JPEG scores at `quality` on this image: a search over blended table qualities and chroma
    scales (on a sample of a large image, whose tables then serve the whole)."""
    if rgb.width * rgb.height <= MATCH_SAMPLE_PIXELS * 3 // 2:
        return _search(rgb, quality).data
    found = _search(sample(rgb), quality)
    return mozjpeg(ycc.compensated(rgb), blended_tables(found.level, "trellis", found.chroma))


def sample(rgb: Image.Image) -> Image.Image:
    """About MATCH_SAMPLE_PIXELS of an image: a mosaic of square tiles spread evenly over it."""
    width, height = rgb.size
    tile = max(16, min(SAMPLE_TILE, width, height) // 16 * 16)
    wanted = max(1, MATCH_SAMPLE_PIXELS // (tile * tile))
    down = max(1, min(height // tile, math.isqrt(wanted * height // width)))
    across = max(1, min(width // tile, wanted // down))
    mosaic = Image.new(rgb.mode, (across * tile, down * tile))
    for row in range(down):
        top = _spread(row, down, height - tile)
        for column in range(across):
            left = _spread(column, across, width - tile)
            mosaic.paste(rgb.crop((left, top, left + tile, top + tile)), (column * tile, row * tile))
    return mosaic


def _spread(index: int, count: int, room: int) -> int:
    """The offset of the index-th of `count` tiles spread over `room` pixels, on the block grid."""
    return room * (2 * index + 1) // (2 * count) // 16 * 16


@dataclass(frozen=True)
class _Match:
    """One search's answer: its tables (table quality and chroma scale), encode and score."""

    level: float
    chroma: float
    data: bytes
    score: float
    passed: bool


def _search(rgb: Image.Image, quality: int) -> _Match:
    """`matched`'s search on the whole of `rgb`: at the tables' own chroma, then at each of
    `MATCH_CHROMA` from where that one ended; the smallest encode that passes."""
    reference = Reference(rgb)
    pillow = io.BytesIO()
    rgb.save(pillow, "JPEG", quality=quality)
    with Image.open(pillow) as decoded:
        target = reference.score(decoded) + MATCH_MARGIN
    pixels = ycc.compensated(rgb)
    start = float(table_quality("trellis", quality))
    first, slope = _match(pixels, reference, target, 1.0, start, 0.5, MATCH_TRIALS)
    found = [first]
    for chroma in MATCH_CHROMA:
        found.append(_match(pixels, reference, target, chroma, first.level, slope, MATCH_CHROMA_TRIALS)[0])
    passing = [match for match in found if match.passed]
    if not passing:  # not even table quality 100 scores Pillow's: the best there is
        return max(found, key=lambda match: match.score)
    return min(passing, key=lambda match: len(match.data))


def _match(
    pixels: npt.NDArray[np.uint8],
    reference: Reference,
    target: float,
    chroma: float,
    level: float,
    slope: float,
    trials: int,
) -> tuple[_Match, float]:
    """The lowest table quality (at `chroma`) whose encode scores `target`, searched from `level`
    with `slope` score points per level at first; with the slope last seen."""
    tried: dict[float, tuple[float, bytes]] = {}

    def measure(level: float) -> float:
        data = mozjpeg(pixels, blended_tables(level, "trellis", chroma))
        with Image.open(io.BytesIO(data)) as decoded:
            tried[level] = (reference.score(decoded), data)
        return tried[level][0]

    for _ in range(trials):
        score = measure(level)
        failing = max((lv for lv, (s, _) in tried.items() if s < target), default=0.0)
        passing = min((lv for lv, (s, _) in tried.items() if s >= target), default=100.0)
        if passing - failing <= MATCH_PRECISION or (failing >= 100.0 or passing <= 1.0):
            break
        near = sorted(tried, key=lambda lv: abs(tried[lv][0] - target))[:2]
        if len(near) == 2 and tried[near[0]][0] != tried[near[1]][0]:
            slope = max(0.05, (tried[near[0]][0] - tried[near[1]][0]) / (near[0] - near[1]))
        step = level + (target - score) / slope
        level = min(passing - MATCH_PRECISION / 2, max(failing + MATCH_PRECISION / 2, step))
    while not any(s >= target for s, _ in tried.values()) and max(tried) < 100.0:
        measure(min(100.0, max(tried) + 5.0))  # not met within the trials: climb until it is
    passing_levels = [lv for lv, (s, _) in tried.items() if s >= target]
    best = min(passing_levels) if passing_levels else max(tried, key=lambda lv: tried[lv][0])
    score, data = tried[best]
    return _Match(best, chroma, data, score, bool(passing_levels)), slope
