"""The image pipeline: decode an upload safely and re-encode it smaller. No Redis, no HTTP.

Every step runs inside `decoding_errors()`, so whatever Pillow raises on a hostile file ends
as an imgpress error (and a failed job), never an unhandled crash.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageFile, ImageOps

from shared import storage
from shared.errors import TooLarge
from shared.imaging import FORMATS, check_pixels, decoding_errors, format_of, open_image
from shared.options import Options
from shared.schema import OutputInfo

log = logging.getLogger(__name__)

#: `Image.info` keys that describe how to draw the image rather than who made it; everything
#: else (EXIF, XMP, comments, text chunks, which can carry payloads) is dropped.
_KEPT_INFO = {"transparency", "duration", "loop", "background", "disposal", "blend", "default_image"}
#: Keys that say how the file was encoded and carry nothing of the user's. An input with only
#: these (and the ICC profile) is "clean": its own bytes may be served when re-encoding does
#: not make it smaller. Any other key (EXIF, comments, text chunks...) forces the re-encode.
_HARMLESS_INFO = _KEPT_INFO | {
    "icc_profile", "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "adobe",
    "adobe_transform", "progressive", "progression", "interlace", "gamma", "srgb", "chromaticity",
    "aspect", "version", "mp", "mpoffset", "mpentry", "extension", "lossless",
}  # fmt: skip
#: Formats whose output keeps every frame; the others get the first.
_ANIMATED = {"GIF", "PNG", "WEBP"}


@dataclass(frozen=True)
class Limits:
    """Resource limits the pipeline enforces on every frame it touches."""

    max_pixels: int
    max_frames: int


def compress(source: Path, destination: Path, temp: Path, options: Options, limits: Limits) -> OutputInfo:
    """Re-encode `source` in its own format into `destination`, never larger than the source.

    `temp` is the scratch file to encode into before it is moved into place.
    """
    try:
        with decoding_errors(), open_image(source, limits.max_pixels) as image:
            fmt = format_of(image)
            media_type = FORMATS[fmt]
            frames = _load_frames(image, limits)
            clean = set(image.info) <= _HARMLESS_INFO
            icc_profile = image.info.get("icc_profile")
            animated = frames > 1 and fmt in _ANIMATED
            if frames > 1 and not animated:
                image.seek(0)
            picture = image if animated else _upright(image)
            picture.info = {key: value for key, value in picture.info.items() if key in _KEPT_INFO}
            _encode(picture, temp, fmt, animated, options, icc_profile)
            width, height = picture.size
        if clean and temp.stat().st_size >= source.stat().st_size:
            # Re-encoding did not help and the upload carries nothing to strip: serve its own
            # bytes rather than a bigger file.
            shutil.copyfile(source, temp)
            with decoding_errors(), open_image(source, limits.max_pixels) as original:
                width, height = original.size
        size = temp.stat().st_size
        storage.move_into_place(temp, destination)
    finally:
        temp.unlink(missing_ok=True)
    return OutputInfo(media_type=media_type, bytes=size, width=width, height=height)


def _load_frames(image: ImageFile.ImageFile, limits: Limits) -> int:
    """Decode every frame, checking the frame count and each frame's extent before decoding it.

    Bombs can hide in a later frame (a 100x100 GIF whose second frame declares 4 Gpx), so
    checking the first frame's size is not enough.
    """
    frames = int(getattr(image, "n_frames", 1))
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
    if frames > 1:
        image.seek(0)
    return frames


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation to the pixels; broken EXIF is treated as 'already upright'."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - any EXIF parser failure means "no usable orientation"
        log.info("ignoring unreadable EXIF data")
        return image
    if orientation not in range(2, 9):
        return image
    upright = ImageOps.exif_transpose(image)
    return upright if upright is not None else image


def _encode(
    image: Image.Image, temp: Path, fmt: str, animated: bool, options: Options, icc_profile: bytes | None
) -> None:
    """Write the image in `fmt` with metadata stripped (the ICC profile is kept)."""
    params: dict[str, Any] = {"format": fmt}
    if icc_profile:
        params["icc_profile"] = icc_profile
    if animated:
        params["save_all"] = True
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        params.update(quality=options.quality, optimize=True, progressive=True, comment=b"", exif=b"")
    elif fmt == "PNG":
        params.update(optimize=True)
    elif fmt == "WEBP":
        params.update(quality=options.quality, method=4, exif=b"", xmp=b"")
    elif fmt == "GIF":
        params.update(optimize=True, comment=b"")
    image.save(temp, **params)
