"""The image pipeline: decode an upload safely and re-encode it smaller. No Redis, no HTTP."""

from __future__ import annotations

import functools
import io
import itertools
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms, ImageFile, ImageOps, ImageSequence

from screening.imaging import DISK_FULL, NO_ROOM, check_pixels, decoding_errors, format_of, open_image
from shared import storage
from shared.errors import CannotFit, ImgpressError, StorageFull, TooLarge
from shared.options import DEFAULT_QUALITY, EFFORTS, Options
from shared.schema import OutputInfo
from worker import codecs, quality, repack, resize
from worker.metadata import collect
from worker.metric import Reference

log = logging.getLogger(__name__)

#: Pillow format of an upload -> the output format `format=same` gives it.
_SAME = {"JPEG": "jpeg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "AVIF": "avif", "HEIF": "jpeg"}
#: Palette quality tried for PNG when quality=auto (kept only if it meets the target).
AUTO_PNG_QUALITY = 90
#: A JPEG scaled down is decoded at a reduced size at least this many times the output's per
#: side, which Lanczos then brings down (Pillow's thumbnail() keeps the same margin).
DRAFT_MARGIN = 2


@dataclass(frozen=True)
class Limits:
    """Resource limits the pipeline enforces on every frame it touches."""

    max_pixels: int
    max_frames: int


def compress(source: Path, destination: Path, temp: Path, options: Options, limits: Limits) -> OutputInfo:
    """Re-encode `source` as `options` ask into `destination`; `temp` is the scratch file."""
    try:
        output, data = encode(source, options, limits)
        _publish(data, temp, destination)
    finally:
        temp.unlink(missing_ok=True)
    return output


def encode(source: Path | bytes, options: Options, limits: Limits) -> tuple[OutputInfo, bytes]:
    """Re-encode `source` (a file, or its bytes) as `options` ask: what the output is, and its
    bytes (for a bucket)."""
    with decoding_errors(), _checked(source, limits, options) as (image, frames):
        fmt, choice, size = _compress_image(source, image, frames, options, limits)
    output = OutputInfo(
        media_type=codecs.OUTPUTS[fmt][1],
        bytes=len(choice.data),
        width=size[0],
        height=size[1],
        quality=choice.quality,
        format=fmt,
    )
    return output, choice.data


@functools.cache
def warm_up() -> None:
    """Load every Pillow plugin and codec, and run each encoder once, before any job's memory cap:
    a plugin whose import fails under a cap stays unregistered for the life of the process."""
    Image.init()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "input"
        Image.new("RGB", (32, 32), (120, 30, 200)).save(source, "PNG")
        for fmt in (*codecs.OUTPUTS, "auto"):
            for level, effort in itertools.product((None, DEFAULT_QUALITY), EFFORTS):
                options = Options(format=fmt, quality=level, effort=effort)
                compress(source, Path(folder) / "output", Path(folder) / "temp", options, Limits(10**6, 1))


def decodes(source: Path | bytes, limits: Limits) -> bool:
    """Whether every frame of `source` decodes (to tell a corrupt file from one that ran out of
    memory somewhere in the pipeline)."""
    try:
        with decoding_errors(), open_image(source, limits.max_pixels, limits.max_frames) as image:
            _load_frames(image, limits)
    except ImgpressError:
        return False
    return True


def _publish(data: bytes, temp: Path, destination: Path) -> None:
    """Write the output under its temp name and move it into place; StorageFull if the disk is full."""
    try:
        temp.write_bytes(data)
        storage.move_into_place(temp, destination)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise StorageFull(NO_ROOM) from None
        raise


def _compress_image(
    source: Path | bytes, image: ImageFile.ImageFile, frames: int, options: Options, limits: Limits
) -> tuple[str, quality.Choice, tuple[int, int]]:
    """The output format, the chosen encoding and its dimensions."""
    source_format = _SAME[format_of(image)]
    icc_profile = image.info.get("icc_profile")
    metadata = collect(image, options.metadata, icc_profile)
    fmt = source_format if options.format == "same" else options.format
    picture: Image.Image | codecs.Animation
    if frames > 1 and fmt in (codecs.ANIMATED | {"auto"}):
        fmt = "webp" if fmt == "auto" else fmt
        picture = _animation(image, options, limits)
        size = picture.frames[0].size
        choice = _fixed(picture, fmt, options, metadata)
    else:
        still, icc_profile = _normalized(_upright(image), icc_profile)
        metadata = codecs.Metadata(icc_profile, metadata.exif, metadata.xmp)
        picture = _resized(still, options, limits)
        size = picture.size
        if fmt == "auto":
            fmt, choice = _smallest(picture, options, metadata)
        else:
            if fmt == "jpeg" and codecs.has_alpha(picture):
                picture = _flatten(picture)
            choice = _choose(picture, fmt, options, metadata)
    if options.changes_format_or_size or format_of(image) == "HEIF":  # HEIC to JPEG changes format
        return fmt, choice, size
    return _no_larger(source, image, picture, metadata, fmt, choice, size, options)


def _choose(
    picture: Image.Image,
    fmt: str,
    options: Options,
    metadata: codecs.Metadata,
    reference: Reference | None = None,
) -> quality.Choice:
    """Encode a still image in `fmt`, choosing the quality and encoders as the options ask."""
    effort = options.effort
    if options.quality is None and fmt in codecs.LOSSY:
        target = quality.TARGETS[options.target]
        chosen = quality.for_target(picture, fmt, target, metadata, reference, effort)
        if options.max_bytes is None or len(chosen.data) <= options.max_bytes:
            return chosen
        # The target's quality is too large: the best that fits lies below it.
        ceiling = max(1, (chosen.quality or 100) - 1)
        return quality.for_size(picture, fmt, options.max_bytes, ceiling, metadata, effort)
    if options.max_bytes is not None:
        return quality.for_size(picture, fmt, options.max_bytes, options.quality or 100, metadata, effort)
    level = AUTO_PNG_QUALITY if options.quality is None else options.quality
    if fmt == "png" and level < 100:
        return _palette_png(picture, level, quality.TARGETS[options.target], metadata, reference, effort)
    return quality.Choice(codecs.encode(picture, fmt, level, metadata, effort), level)


def _fixed(
    picture: codecs.Animation, fmt: str, options: Options, metadata: codecs.Metadata
) -> quality.Choice:
    """Encode an animation at the asked quality (auto means 80), or the highest that fits max_bytes."""
    level = options.quality or 80
    if options.max_bytes is not None:
        return quality.for_size(picture, fmt, options.max_bytes, level, metadata, options.effort)
    return quality.Choice(codecs.encode(picture, fmt, level, metadata, options.effort), level)


def _palette_png(
    picture: Image.Image,
    level: int,
    target: float,
    metadata: codecs.Metadata,
    reference: Reference | None,
    effort: str,
) -> quality.Choice:
    """A palette PNG if it still meets the perceptual target, else the lossless one."""
    palette = codecs.quantize(picture, level)
    if palette.mode == "P":
        data = codecs.encode_png(palette, metadata, effort)
        with Image.open(io.BytesIO(data)) as decoded:
            score = (reference or Reference(picture)).score(decoded)
        if score >= target:
            return quality.Choice(data, level, score)
    return quality.Choice(codecs.encode_png(picture, metadata, effort), 100)


def _smallest(
    picture: Image.Image, options: Options, metadata: codecs.Metadata
) -> tuple[str, quality.Choice]:
    """format=auto: the smallest candidate that meets the target (or is lossless, for quality=100).

    A transparent image never becomes JPEG; quality=100 only considers lossless PNG and WebP;
    AVIF is left out where the effort says so (`codecs.Effort.auto_avif`).
    """
    if options.quality == 100:
        candidates = ["png", "webp"]
    else:
        candidates = ["webp", "avif"] + (["png"] if codecs.has_alpha(picture) else ["jpeg"])
        if not codecs.EFFORTS[options.effort].auto_avif:
            candidates.remove("avif")
    auto = Options(
        quality=None if options.quality != 100 else 100,
        target=options.target,
        max_bytes=options.max_bytes,
        effort=options.effort,
    )
    reference = Reference(picture) if auto.quality is None and auto.max_bytes is None else None
    results: list[tuple[str, quality.Choice]] = []
    for fmt in candidates:
        try:
            results.append((fmt, _choose(picture, fmt, auto, metadata, reference)))
        except CannotFit:
            continue
    if not results:
        raise CannotFit(f"No format fits the image in max_bytes={options.max_bytes:,}.")
    return min(results, key=lambda item: len(item[1].data))


def _no_larger(
    source: Path | bytes,
    image: ImageFile.ImageFile,
    picture: Image.Image | codecs.Animation,
    metadata: codecs.Metadata,
    fmt: str,
    choice: quality.Choice,
    size: tuple[int, int],
    options: Options,
) -> tuple[str, quality.Choice, tuple[int, int]]:
    """`choice` if it is smaller than the upload; else the upload's own pixels losslessly repacked
    (`worker.repack`) if they fit, else the highest quality whose re-encode fits, else the smallest.

    An upload stored sideways keeps no pixels of its own: the orientation is applied to them.
    """
    upload = len(source) if isinstance(source, bytes) else source.stat().st_size
    if len(choice.data) < upload:
        return fmt, choice, size
    kept = None
    if _orientation(image) not in range(2, 9):
        original = source if isinstance(source, bytes) else source.read_bytes()
        kept = repack.floor(original, fmt, options.metadata, options.effort)
    if kept is not None and len(kept) <= min(len(choice.data), upload):
        return fmt, quality.Choice(kept, None), size
    if len(choice.data) > upload and fmt in codecs.LOSSY and choice.quality not in (None, 1):
        ceiling = (choice.quality or 100) - 1
        try:
            return fmt, quality.for_size(picture, fmt, upload, ceiling, metadata, options.effort), size
        except CannotFit:
            pass
    if len(choice.data) > upload:
        log.info("the output stays larger than the upload: %d > %d bytes", len(choice.data), upload)
    return fmt, choice, size


@contextmanager
def _checked(
    source: Path | bytes, limits: Limits, options: Options | None = None
) -> Iterator[tuple[ImageFile.ImageFile, int]]:
    """The image at its first frame and its frame count, once every frame is decoded and checked.

    An animation is opened again instead of rewound: Pillow's rewind of a PNG to frame 0 drops
    the palette of a palette image, which then decodes as one colour.
    """
    with open_image(source, limits.max_pixels, limits.max_frames) as image:
        if options is not None:
            _draft(image, options, limits)
        frames = _load_frames(image, limits)
        if frames == 1:
            yield image, frames
            return
    with open_image(source, limits.max_pixels) as image:
        yield image, frames


def _draft(image: ImageFile.ImageFile, options: Options, limits: Limits) -> None:
    """Have libjpeg decode a JPEG that will be scaled down at 1/2, 1/4 or 1/8 of its size (its
    DCT scaling, far cheaper than decoding every pixel), keeping DRAFT_MARGIN times the output."""
    if image.format != "JPEG" or (options.width is None and options.height is None):
        return
    turned = _orientation(image) in range(5, 9)  # the box applies to the upright picture
    width, height = image.size[::-1] if turned else image.size
    try:
        (out_width, out_height), _ = resize.output_size(
            width, height, options.width, options.height, options.fit, limits.max_pixels
        )
    except TooLarge:
        return  # _resized says so, once the image is checked
    wanted = (out_width * DRAFT_MARGIN, out_height * DRAFT_MARGIN)
    if wanted[0] < width and wanted[1] < height:
        image.draft(image.mode, wanted[::-1] if turned else wanted)


def _load_frames(image: ImageFile.ImageFile, limits: Limits) -> int:
    """Decode every frame, checking the frame count and each frame's extent before decoding it.

    Bombs can hide in a later frame (a 100x100 GIF whose second frame declares 4 Gpx), so
    checking the first frame's size is not enough.
    """
    frames = int(getattr(image, "n_frames", 1))
    if image.format in ("AVIF", "HEIF", "MPO"):
        # Image sequences, HEIF collections and an MPO's other pictures (the second eye, depth,
        # previews): the primary image only. Pillow never reads the others' headers.
        frames = 1
    if frames > limits.max_frames:
        raise TooLarge(f"The image has {frames:,} frames; the limit is {limits.max_frames:,}.")
    for index in range(frames):
        if frames > 1:
            image.seek(index)
        check_pixels(image.width, image.height, limits.max_pixels)
        for tile in image.tile:
            if tile.extents is not None:
                left, top, right, bottom = tile.extents
                check_pixels(max(right - left, 1), max(bottom - top, 1), limits.max_pixels)
        image.load()
    return frames


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8); broken EXIF is treated as 'already upright' (1)."""
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:
        log.info("ignoring unreadable EXIF data")
        return 1


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation to the pixels."""
    if _orientation(image) not in range(2, 9):
        return image
    upright = ImageOps.exif_transpose(image)
    return upright if upright is not None else image


def _normalized(image: Image.Image, icc_profile: bytes | None) -> tuple[Image.Image, bytes | None]:
    """8-bit RGB, RGBA, L or LA pixels with correct colours, and the ICC profile that goes with them."""
    if image.mode == "CMYK":
        # Through the embedded profile when there is one (Adobe CMYK is not naive 255-x).
        if icc_profile:
            try:
                source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
                srgb = ImageCms.createProfile("sRGB")
                converted = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
                if converted is not None:
                    return converted, None
            except (ImageCms.PyCMSError, OSError, ValueError):
                log.info("ignoring unusable CMYK profile")
        return image.convert("RGB"), None
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        wide = image if image.mode == "I" else image.convert("I")
        return wide.point(lambda value: value / 257).convert("L"), icc_profile
    if image.mode == "F":
        return image.convert("L"), icc_profile
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image, icc_profile
    if codecs.has_alpha(image) or image.mode in ("PA", "RGBa", "La"):
        return image.convert("LA" if image.mode in ("La",) else "RGBA"), icc_profile
    if image.mode == "1":
        return image.convert("L"), icc_profile
    return image.convert("RGB"), icc_profile


def _flatten(image: Image.Image) -> Image.Image:
    """Composite a transparent image on white, for formats without alpha (asked for explicitly)."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _resized(image: Image.Image, options: Options, limits: Limits) -> Image.Image:
    """The image at the size the width/height/fit options ask for, within the limits."""
    size, crop = resize.output_size(
        image.width, image.height, options.width, options.height, options.fit, limits.max_pixels
    )
    return resize.resize(image, size, crop)


def _animation(image: ImageFile.ImageFile, options: Options, limits: Limits) -> codecs.Animation:
    """Every frame as RGBA at the asked size, with durations and loop count."""
    loop = int(image.info.get("loop", 0) or 0)
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        durations.append(int(frame.info.get("duration", 100) or 100))
        frames.append(_resized(frame.convert("RGBA"), options, limits))
    return codecs.Animation(frames, durations, loop)
