"""Encoders: one function per output format, each wrapping the best library measured for it
(docs/design.md, "Encoders"; docs/compression.md)."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import imagequant
import mozjpeg_lossless_optimization
import oxipng
from PIL import Image

from shared.options import DEFAULT_EFFORT
from worker import jpeg

#: Output formats by their option name -> (Pillow format name, media type).
OUTPUTS: dict[str, tuple[str, str]] = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
    "avif": ("AVIF", "image/avif"),
    "gif": ("GIF", "image/gif"),
}
#: Formats that can hold more than one frame.
ANIMATED = {"png", "webp", "gif"}
#: Formats that keep an alpha channel.
WITH_ALPHA = {"png", "webp", "avif", "gif"}
#: Formats whose quality number changes the pixels (PNG and WebP are lossless at 100).
LOSSY = {"jpeg", "webp", "avif"}

#: libaom's tuning for SSIMULACRA2 itself (libaom >= 3.13): ~3% fewer bytes at equal score.
AVIF_TUNE = "ssimulacra2"
#: libavif speed (0-10) of the quality search's trials: ~1/3 of speed 6's cost.
AVIF_PROBE_SPEED = 8
#: CPU milliseconds per megapixel of one AVIF encode by speed (0.4 MP photos, this machine), and
#: how many quality steps lower than the probe speed's choice the same score usually sits.
AVIF_COSTS: dict[int, tuple[float, int]] = {5: (3300.0, 3), 6: (760.0, 2), 7: (450.0, 1), 8: (275.0, 0)}


@dataclass(frozen=True)
class Effort:
    """What one value of the `effort` option spends on each output format (docs/compression.md)."""

    #: The JPEG encoder (`worker.jpeg.encode`): "turbo", "optimized" or "trellis"; at "trellis" a
    #: fixed quality number is matched per image to Pillow's score (`worker.jpeg.matched`).
    jpeg: str
    #: oxipng's level (0-6).
    png_level: int
    #: libwebp's method (0-6).
    webp_method: int
    #: CPU an AVIF encode may cost (ms): the slowest speed within it is used; 0 means the probe speed.
    avif_budget_ms: float
    #: Whether format=auto tries AVIF (its fastest encode costs ~100x Pillow's JPEG).
    auto_avif: bool


#: Each `effort` value (shared.options.EFFORTS). Bytes and CPU measured for each choice are in
#: docs/compression.md ("Effort"); oxipng level 2 gave 0.75 of plain Pillow's PNG bytes, level 4
#: 0.74 at several times the cost; libwebp method 4 costs ~2.5x less than 6 for a few % more bytes.
EFFORTS: dict[str, Effort] = {
    "fast": Effort(jpeg="turbo", png_level=1, webp_method=2, avif_budget_ms=0.0, auto_avif=False),
    "balanced": Effort(jpeg="optimized", png_level=2, webp_method=4, avif_budget_ms=1500.0, auto_avif=True),
    "max": Effort(jpeg="trellis", png_level=4, webp_method=6, avif_budget_ms=6000.0, auto_avif=True),
}


@dataclass(frozen=True)
class Metadata:
    """What to embed in the output: an ICC profile, EXIF bytes and XMP bytes (each optional)."""

    icc_profile: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None


@dataclass(frozen=True)
class Animation:
    """The frames of an animated image, with per-frame durations (ms) and the loop count."""

    frames: list[Image.Image]
    durations: list[int] = field(default_factory=list)
    loop: int = 0


def has_alpha(image: Image.Image) -> bool:
    """True if the image has a transparency channel or a transparent palette entry."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info


def encode(
    picture: Image.Image | Animation,
    fmt: str,
    quality: int,
    metadata: Metadata,
    effort: str = DEFAULT_EFFORT,
    speed: int | None = None,
) -> bytes:
    """Encode a still image or an animation in `fmt` ('jpeg', 'png', ...) at `quality` (1-100),
    spending what `effort` ('fast', 'balanced', 'max') allows.

    AVIF is encoded at `speed`, by default the slowest that `avif_speed` allows for its size.
    """
    if isinstance(picture, Animation):
        return _encode_animation(picture, fmt, quality, metadata, effort)
    if fmt == "jpeg":
        return encode_jpeg(picture, quality, metadata, effort)
    if fmt == "png":
        return encode_png(quantize(picture, quality) if quality < 100 else picture, metadata, effort)
    buffer = io.BytesIO()
    params = _pillow_params(fmt, quality, metadata, effort)
    if fmt == "avif":
        params.update(speed=avif_speed(picture.size, effort) if speed is None else speed)
    picture.save(buffer, **params)
    return buffer.getvalue()


def avif_speed(size: tuple[int, int], effort: str = DEFAULT_EFFORT) -> int:
    """The slowest AVIF speed whose encode of an image this size fits the effort's CPU budget."""
    megapixels = size[0] * size[1] / 1e6
    budget = EFFORTS[effort].avif_budget_ms
    affordable = [speed for speed, (cost, _) in AVIF_COSTS.items() if cost * megapixels <= budget]
    return min(affordable, default=AVIF_PROBE_SPEED)


def trial_encoder(
    image: Image.Image, fmt: str, metadata: Metadata, effort: str = DEFAULT_EFFORT, full_chroma: bool = False
) -> Callable[[int], bytes]:
    """Bytes at a quality for the quality search, cheaper than `encode`.

    JPEG trials are the effort's encodes without metadata (`finish_jpeg` completes them).
    AVIF trials use the probe speed, whose pixels differ a little from the final speed's
    (`worker.quality` refines for that).
    """
    if fmt == "jpeg":
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return jpeg.trials(rgb, EFFORTS[effort].jpeg, full_chroma)
    if fmt == "avif":
        return lambda quality: encode(image, fmt, quality, metadata, effort, speed=AVIF_PROBE_SPEED)
    return lambda quality: encode(image, fmt, quality, metadata, effort)


def _pillow_params(
    fmt: str, quality: int, metadata: Metadata, effort: str = DEFAULT_EFFORT
) -> dict[str, Any]:
    """Pillow save() arguments for the formats Pillow encodes itself."""
    params: dict[str, Any] = {"format": OUTPUTS[fmt][0]}
    if metadata.icc_profile:
        params["icc_profile"] = metadata.icc_profile
    if fmt == "webp":
        method = EFFORTS[effort].webp_method
        params.update(method=method, exif=metadata.exif or b"", xmp=metadata.xmp or b"")
        params.update(lossless=True, quality=100) if quality >= 100 else params.update(quality=quality)
    elif fmt == "avif":
        params.update(quality=quality, exif=metadata.exif or b"", xmp=metadata.xmp or b"")
        params.update(speed=AVIF_PROBE_SPEED)
        if quality < 100:  # libaom refuses a tune in lossless mode (quality 100)
            params.update(advanced=[("c:tune", AVIF_TUNE)])  # colour planes only
    elif fmt == "gif":
        params.update(optimize=True, comment=b"")
    elif fmt == "png":
        params.update(compress_level=1)
        if metadata.exif:
            params["exif"] = metadata.exif
    return params


def encode_jpeg(
    image: Image.Image,
    quality: int,
    metadata: Metadata,
    effort: str = DEFAULT_EFFORT,
    full_chroma: bool = False,
) -> bytes:
    """A JPEG at `quality` with the effort's encoder (`worker.jpeg`), with the metadata. At
    `max` it is the fewest trellis bytes that score what Pillow's JPEG scores at `quality`."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    encoder = EFFORTS[effort].jpeg
    if encoder == "trellis" and not full_chroma:
        return finish_jpeg(jpeg.matched(rgb, quality), metadata)
    return finish_jpeg(jpeg.encode(rgb, quality, encoder, full_chroma), metadata)


def finish_jpeg(pixels: bytes, metadata: Metadata) -> bytes:
    """The output for an encode of `worker.jpeg`: the metadata added."""
    return with_segments(pixels, metadata)


def optimize_jpeg(data: bytes, keep_icc: bool = False) -> bytes:
    """mozjpeg's lossless pass (progressive, optimal Huffman); every marker but ICC is dropped."""
    copy = mozjpeg_lossless_optimization.COPY_MARKERS
    result: bytes = mozjpeg_lossless_optimization.optimize(data, copy=copy.ICC if keep_icc else copy.NONE)
    return result


def with_segments(jpeg: bytes, metadata: Metadata) -> bytes:
    """Insert EXIF (APP1), XMP (APP1) and ICC (APP2, chunked) segments right after SOI."""
    segments = b""
    if metadata.exif:
        exif = metadata.exif if metadata.exif.startswith(b"Exif\0\0") else b"Exif\0\0" + metadata.exif
        segments += _segment(0xE1, exif)
    if metadata.xmp:
        segments += _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + metadata.xmp)
    if metadata.icc_profile:
        chunk = 65519
        parts = [metadata.icc_profile[i : i + chunk] for i in range(0, len(metadata.icc_profile), chunk)]
        for number, part in enumerate(parts, start=1):
            segments += _segment(0xE2, b"ICC_PROFILE\0" + bytes([number, len(parts)]) + part)
    return jpeg[:2] + segments + jpeg[2:]


def _segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        return b""  # too big for one segment (huge EXIF): leave it out rather than corrupt the file
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def quantize(image: Image.Image, quality: int) -> Image.Image:
    """Reduce to a 256-colour (or smaller) palette with libimagequant, aiming at `quality`."""
    rgba = image.convert("RGBA")
    try:
        # The raw-bytes entry point: the package's PIL helper walks pixels in Python (slow, deprecated).
        indices, palette = imagequant.quantize_raw_rgba_bytes(
            rgba.tobytes(), rgba.width, rgba.height, dithering_level=1.0, max_quality=quality
        )
    except RuntimeError:
        return image  # libimagequant gave up (quality unreachable): stay lossless
    result = Image.frombytes("P", rgba.size, indices)
    result.putpalette(palette, rawmode="RGBA")
    return result


def encode_png(image: Image.Image, metadata: Metadata, effort: str = DEFAULT_EFFORT) -> bytes:
    """A fast Pillow PNG, recompressed losslessly by oxipng at the effort's level."""
    buffer = io.BytesIO()
    image.save(buffer, **_pillow_params("png", 100, metadata))
    return optimize_png(buffer.getvalue(), effort=effort)


def optimize_png(data: bytes, strip: bool = False, effort: str = DEFAULT_EFFORT) -> bytes:
    """oxipng's lossless recompression (`repack_png`), or `data` as it is if oxipng refuses it."""
    try:
        return repack_png(data, strip, effort)
    except ValueError:
        return data


def repack_png(data: bytes, strip: bool = False, effort: str = DEFAULT_EFFORT) -> bytes:
    """oxipng's lossless recompression; with `strip`, ancillary chunks other than colour ones go.
    ValueError if oxipng refuses the PNG."""
    options: dict[str, Any] = {"level": EFFORTS[effort].png_level, "optimize_alpha": True}
    if strip:
        options["strip"] = oxipng.StripChunks.safe()
    try:
        result: bytes = oxipng.optimize_from_memory(data, **options)
    except oxipng.PngError as exc:
        raise ValueError(str(exc)) from None
    return result


def _encode_animation(animation: Animation, fmt: str, quality: int, metadata: Metadata, effort: str) -> bytes:
    """All frames in an animated format; the caller only asks for formats in ANIMATED."""
    first, rest = animation.frames[0], animation.frames[1:]
    params = _pillow_params(fmt, quality, metadata, effort)
    params.update(save_all=True, append_images=rest, loop=animation.loop)
    if animation.durations:
        params["duration"] = animation.durations
    buffer = io.BytesIO()
    first.save(buffer, **params)
    data = buffer.getvalue()
    return optimize_png(data, effort=effort) if fmt == "png" else data
