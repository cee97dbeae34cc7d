"""SSIMULACRA2 fast enough to steer a quality search: the source's half of the work is kept
between scores (docs/design.md, "The metric")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

Array = npt.NDArray[np.float32]

_SCALES = 6
_C2 = 0.0009
_SIGMA = 1.5
_OPSIN = np.array(
    [
        [0.30, 0.622, 0.078],
        [0.23, 0.692, 0.078],
        [0.24342268924547819, 0.20476744424496821, 0.5518098665095536],
    ],
    dtype=np.float32,
)
# The package blurs with scipy's gaussian_filter (sigma 1.5, truncate 3.33): an 11-tap kernel.
# One thread: see worker/__init__.py (threads started under the memory cap can fail).
cv2.setNumThreads(1)
_KERNEL = cv2.getGaussianKernel(11, _SIGMA, cv2.CV_32F)
_IDENTITY = np.ones((1, 1), dtype=np.float32)
#: sRGB byte value -> linear light.
_LINEAR = np.where(
    (steps := np.arange(256, dtype=np.float64) / 255.0) <= 0.04045,
    steps / 12.92,
    ((steps + 0.055) / 1.055) ** 2.4,
).astype(np.float32)
_BIAS = np.float32(0.0037930732552754493)
_CBRT_BIAS = np.float32(np.cbrt(0.0037930732552754493))
# Weights of the 108 sub-scores (3 channels x 6 scales x 2 norms x 3 maps), from libjxl.
_WEIGHTS = np.array(
    [
        0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0, 0.0004371155730107379,
        0.0, 1.1041726426657346, 0.00066284834129271, 0.00015231632783718752, 0.0, 0.0016406437456599754,
        0.0, 1.8422455520539298, 11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653,
        0.0, 1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833, 0.0,
        0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053, 0.0004550992113792063, 0.0,
        0.0, 0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0, 7.466890328078848, 0.0, 17.445833984131262,
        0.0006235601634041466, 0.0, 0.0, 6.683678146179332, 0.00037724407979611296, 1.027889937768264,
        225.20515300849274, 0.0, 0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
        176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757, 0.0004485436923833408, 0.0,
        0.0, 0.0, 34.77906344483772, 44.835625328877896, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0008680556573291698, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0005313191874358747, 0.0, 0.00016533814161379112,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437,
        0.0, 0.0, 8.826982764996862, 23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682,
        0.9834382792465353, 0.0012286405048278493, 171.2667255897307, 0.9807858872435379, 0.0, 0.0, 0.0,
        0.0005130064588990679, 0.0, 0.00010854057858411537,
    ]
)  # fmt: skip


#: Opsin absorbance with its bias as a 3x4 affine matrix (cv2.transform applies it per pixel).
_MIX = np.hstack([_OPSIN, np.full((3, 1), _BIAS)]).astype(np.float32)
#: From cube roots to positive XYB in one affine step (the cube-root bias cancels out of X and B).
_TO_XYB = np.array(
    [[7.0, -7.0, 0.0, 0.42], [0.5, 0.5, 0.0, 0.01 - _CBRT_BIAS], [-0.5, -0.5, 1.0, 0.55]], dtype=np.float32
)


#: Rows per band; a band's maps take ~12 arrays of BAND_ROWS x width x 3 floats.
BAND_ROWS = 256
#: Images up to this many pixels keep the source's half of every band (~50 bytes per pixel).
CACHE_PIXELS = 3_000_000
#: The blur's reach: rows of halo a band needs on each side.
_RADIUS = 5


@dataclass(frozen=True)
class _Band:
    """The source's half of one band: XYB of the rows with their halo, then means, variances and
    ringing denominators of the band's own rows."""

    xyb: Array
    mu: Array
    variance: Array
    spread: Array
    top: int
    bottom: int


def linear_rgb(image: Image.Image, background: float = 0.5) -> Array:
    """Linear-light RGB floats of an image; alpha is blended (in sRGB) on a grey `background`."""
    if _has_alpha(image):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        srgb = rgba[..., :3] * alpha + (1.0 - alpha) * background
        blended = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
        return cast(Array, blended.astype(np.float32))
    return cast(Array, cv2.LUT(np.asarray(image.convert("RGB")), _LINEAR))


def _positive_xyb(linear: Array) -> Array:
    mixed: Array = np.maximum(cast(Array, cv2.transform(linear, _MIX)), np.float32(0.0))
    return cast(Array, cv2.transform(np.cbrt(mixed), _TO_XYB))


def _blur(slab: Array, top: int, bottom: int) -> Array:
    """The package's blur of a band's rows, from a slab with `top` and `bottom` rows of halo.

    The package works on transposed planes: it reflects rows and zero-pads columns (radius 5).
    A halo shorter than the radius means the band touches the image's edge, which reflects.
    """
    if top < _RADIUS or bottom < _RADIUS:
        slab = cast(
            Array, cv2.copyMakeBorder(slab, _RADIUS - top, _RADIUS - bottom, 0, 0, cv2.BORDER_REFLECT)
        )
    rows = cv2.sepFilter2D(slab, -1, _IDENTITY, _KERNEL, borderType=cv2.BORDER_REFLECT)[_RADIUS:-_RADIUS]
    return cast(Array, cv2.sepFilter2D(rows, -1, _KERNEL, _IDENTITY, borderType=cv2.BORDER_CONSTANT))


def _half(linear: Array) -> Array:
    """2x2 box downsampling; an odd last row or column is averaged on its own."""
    height, width, _ = linear.shape
    if height % 2 or width % 2:
        linear = cast(Array, cv2.copyMakeBorder(linear, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE))
    size = (linear.shape[1] // 2, linear.shape[0] // 2)
    return cast(Array, cv2.resize(linear, size, interpolation=cv2.INTER_AREA))


def _sums(values: Array) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-channel sums of a non-negative map and of its 4th power (cv2 sums in doubles)."""
    square = values * values
    return np.array(cv2.sumElems(values)[:3]), np.array(cv2.sumElems(square * square)[:3])


def _score(parts: list[npt.NDArray[np.float64]]) -> float:
    """Combine per-scale sub-scores (each 3 channels x 6 values) into the final 0-100 score."""
    if not parts:
        return 100.0  # under 8x8 pixels the package measures nothing and says "identical"
    table = np.stack(parts)  # scales x channels x [ssim1, ssim4, ring1, ring4, blur1, blur4]
    total = 0.0
    index = 0
    for channel in range(3):
        for scale in range(table.shape[0]):
            for norm in range(2):
                row = table[scale, channel]
                total += _WEIGHTS[index] * abs(row[norm])
                total += _WEIGHTS[index + 1] * abs(row[2 + norm])
                total += _WEIGHTS[index + 2] * abs(row[4 + norm])
                index += 3
    total *= 0.9562382616834844
    total = 2.326765642916932 * total - 0.020884521182843837 * total**2 + 6.248496625763138e-05 * total**3
    return 100.0 - 10.0 * float(total**0.6276336467831387) if total > 0 else 100.0


#: Backgrounds a transparent image is blended on; its score is the worse of the two, so a change
#: hidden on a light background still counts on a dark one (the reference package's with-alpha
#: helper means to do this, but drops alpha before blending and so compares hidden colours).
ALPHA_BACKGROUNDS = (0.1, 0.9)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


class _Levels:
    """Linear RGB of an image at every measured scale, read band by band.

    Scale 0 is converted from the 8-bit pixels when a band is read (no float copy of a large
    image); the smaller scales, a third of scale 0 in all, are stored.
    """

    def __init__(self, image: Image.Image, background: float) -> None:
        self._first: npt.NDArray[Any] = (
            linear_rgb(image, background) if _has_alpha(image) else np.asarray(image.convert("RGB"))
        )
        self._smaller: list[Array] = []
        self.count = 0 if min(self.shape(0)) < 8 else 1
        while 0 < self.count < _SCALES:
            height, width = self.shape(self.count - 1)
            if min((height + 1) // 2, (width + 1) // 2) < 8:
                break
            half = np.empty(((height + 1) // 2, (width + 1) // 2, 3), dtype=np.float32)
            for start in range(0, height, 2 * BAND_ROWS):
                stop = min(height, start + 2 * BAND_ROWS)
                half[start // 2 : (stop + 1) // 2] = _half(self.rows(self.count - 1, start, stop))
            self._smaller.append(half)
            self.count += 1

    def shape(self, level: int) -> tuple[int, int]:
        array = self._first if level == 0 else self._smaller[level - 1]
        return array.shape[0], array.shape[1]

    def rows(self, level: int, start: int, stop: int) -> Array:
        if level:
            return self._smaller[level - 1][start:stop]
        part = self._first[start:stop]
        return cast(Array, part if part.dtype == np.float32 else cv2.LUT(part, _LINEAR))


class Reference:
    """A source image prepared once, to be compared with many candidate encodings of it."""

    def __init__(self, image: Image.Image) -> None:
        self.size = image.size
        self._backgrounds = ALPHA_BACKGROUNDS if _has_alpha(image) else (0.5,)
        with _memory_errors():
            self._sources = [_Levels(image, background) for background in self._backgrounds]
        keep = image.width * image.height <= CACHE_PIXELS
        self._caches: list[dict[tuple[int, int], _Band] | None] = [
            {} if keep else None for _ in self._backgrounds
        ]

    def score(self, candidate: Image.Image) -> float:
        """SSIMULACRA2 of `candidate` against this source (100 = identical, 70 = 'medium')."""
        if candidate.size != self.size:
            raise ValueError("the candidate must have the source's dimensions")
        with _memory_errors():
            return min(
                _compare(source, _Levels(candidate, background), cache)
                for source, cache, background in zip(
                    self._sources, self._caches, self._backgrounds, strict=True
                )
            )


@contextmanager
def _memory_errors() -> Iterator[None]:
    """OpenCV reports a failed allocation (under the worker's memory cap) as MemoryError, like numpy."""
    try:
        yield
    except cv2.error as error:
        if getattr(error, "code", None) == cv2.Error.StsNoMem:
            raise MemoryError("not enough memory to compare the images") from None
        raise


def _compare(source: _Levels, candidate: _Levels, cache: dict[tuple[int, int], _Band] | None) -> float:
    parts = []
    for level in range(source.count):
        height, width = source.shape(level)
        totals = np.zeros((6, 3))  # per channel: sums of ssim, ssim^4, ring, ring^4, blur, blur^4
        for start in range(0, height, BAND_ROWS):
            stop = min(height, start + BAND_ROWS)
            band = cache.get((level, start)) if cache is not None else None
            if band is None:
                band = _source_band(source, level, start, stop)
                if cache is not None:
                    cache[(level, start)] = band
            totals += _band_sums(band, candidate.rows(level, start - band.top, stop + band.bottom))
        means = totals / (height * width)
        fourth = means[1::2] ** 0.25
        parts.append(np.stack([means[0], fourth[0], means[2], fourth[1], means[4], fourth[2]], axis=1))
    return _score(parts)


def _source_band(source: _Levels, level: int, start: int, stop: int) -> _Band:
    """The source's half of the band of rows [start, stop) of one scale."""
    low, high = max(0, start - _RADIUS), min(source.shape(level)[0], stop + _RADIUS)
    top, bottom = start - low, high - stop
    xyb = _positive_xyb(source.rows(level, low, high))
    mu = _blur(xyb, top, bottom)
    variance = _blur(xyb * xyb, top, bottom) - mu * mu
    spread = np.abs(xyb[top : top + stop - start] - mu) + np.float32(1.0)
    return _Band(xyb, mu, variance, spread, top, bottom)


def _band_sums(band: _Band, linear: Array) -> npt.NDArray[np.float64]:
    """The candidate's half of one band (`linear` holds its rows with the halo): the six sums."""
    xyb = _positive_xyb(linear)
    mu = _blur(xyb, band.top, band.bottom)
    # ssim = max(1 - (1 - (mu_s - mu)^2) * (2 cov + C2) / (var_s + var + C2), 0), fused in place.
    cov = _blur(band.xyb * xyb, band.top, band.bottom)
    cov -= band.mu * mu
    cov *= 2.0
    cov += _C2
    own = _blur(xyb * xyb, band.top, band.bottom)
    own -= mu * mu
    own += band.variance
    own += _C2
    shift = band.mu - mu
    shift *= shift
    np.subtract(1.0, shift, out=shift)
    cov *= shift
    cov /= own
    np.subtract(1.0, cov, out=cov)
    ssim = np.maximum(cov, np.float32(0.0))
    # Ringing and blurring: how much more (or less) the candidate departs from its local mean.
    ratio = np.abs(xyb[band.top : band.top + len(mu)] - mu)
    ratio += np.float32(1.0)
    ratio /= band.spread
    ratio -= np.float32(1.0)
    sums = [
        *_sums(ssim),
        *_sums(np.maximum(ratio, np.float32(0.0))),
        *_sums(np.maximum(-ratio, np.float32(0.0))),
    ]
    return np.array(sums)
