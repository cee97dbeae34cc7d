"""What imgpress accepts (the formats ever given to Pillow), sniffing and header checks, and the
one place Pillow's and libmagic's errors become imgpress errors; the API and the worker use it."""

from __future__ import annotations

import errno
import io
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import magic
import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from screening import structure
from shared.errors import CorruptImage, ImgpressError, StorageFull, TooLarge, UnsupportedMedia

#: Pillow format name -> the media type we accept and serve for it.
FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "HEIF": "image/heic",
}
#: libmagic's answer -> Pillow format name. APNG is a PNG to Pillow.
SNIFFED: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/apng": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/avif": "AVIF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
}
EXTENSIONS: dict[str, str] = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/avif": ".avif",
    "image/heic": ".heic",
}
#: Pillow formats that are one of ours in disguise: an MPO is a JPEG with extra pictures.
_ALIASES = {"MPO": "JPEG"}
# HEIC/HEIF decoding comes from libheif (pillow-heif); Pillow 13 decodes AVIF itself.
pillow_heif.register_heif_opener()

#: How much of a file libmagic looks at.
SNIFF_BYTES = 8192

# Everything Pillow is known to raise on hostile input. Catching OSError alone leads to 500s.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    IndexError,
    TypeError,
    KeyError,
    EOFError,
    struct.error,
    zlib.error,
    RuntimeError,
)
#: errno values of a full disk or quota: a scratch or output file that cannot be written.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
#: The message of a job that failed because the disk filled while it ran.
NO_ROOM = "The server ran out of disk space while processing this image. Try again later."


@dataclass(frozen=True)
class Header:
    """What an image's header says, read without decoding its pixels."""

    format: str
    media_type: str
    width: int
    height: int


def sniff(head: bytes) -> str:
    """The allowed media type of a file from its first bytes; raises UnsupportedMedia."""
    try:
        media_type = magic.from_buffer(head[:SNIFF_BYTES], mime=True)
    except magic.MagicException:
        raise UnsupportedMedia() from None
    if media_type not in SNIFFED:
        raise UnsupportedMedia()
    return media_type


def load_checkers() -> None:
    """Load libmagic's database and Pillow's common format plugins now, not on the first upload.

    Both load on first use: about 30 ms of the first upload an API process receives.
    """
    magic.from_buffer(b"\x89PNG\r\n\x1a\n", mime=True)
    Image.preinit()


@contextmanager
def decoding_errors() -> Iterator[None]:
    """Translate anything Pillow raises while reading an image into the imgpress error tree."""
    try:
        yield
    except ImgpressError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooLarge("The image has too many pixels.") from None
    except MemoryError:
        raise TooLarge("The image needs more memory to decode than this service allows.") from None
    except UnidentifiedImageError:
        raise CorruptImage(
            "The image cannot be decoded: it is corrupt or uses an unsupported variant."
        ) from None
    except _DECODE_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise StorageFull(NO_ROOM) from None
        raise CorruptImage() from None


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Raise TooLarge if an image (or frame) has more pixels than allowed, CorruptImage if none."""
    if width <= 0 or height <= 0:
        raise CorruptImage("The image has no pixels.")
    if width * height > max_pixels:
        raise TooLarge(f"The image is {width}x{height} pixels; the limit is {max_pixels:,} pixels in all.")


def open_image(source: Path | bytes, max_pixels: int, max_frames: int | None = None) -> ImageFile.ImageFile:
    """Open an allowed image (a file, or its bytes) lazily (header only) and check its structure
    and size; call inside decoding_errors(). `max_frames`, for a caller that decodes: a PNG's
    every chunk and a GIF's every frame are walked too (Pillow reads them in Python as it decodes
    and counts frames)."""
    # Pillow's own bomb check then fires at twice our limit, before any allocation.
    Image.MAX_IMAGE_PIXELS = max_pixels
    structure.check(source, whole=max_frames is not None, max_frames=max_frames)
    image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=list(FORMATS))
    try:
        check_pixels(image.width, image.height, max_pixels)
    except ImgpressError:
        image.close()
        raise
    return image


def format_of(image: Image.Image) -> str:
    """The allowed format name of an opened image (MPO counts as JPEG)."""
    found = image.format or ""
    return _ALIASES.get(found, found)


def read_header(path: Path, sniffed: str, max_pixels: int) -> Header:
    """Read an upload's header; the format Pillow finds must be the one libmagic sniffed."""
    with decoding_errors(), open_image(path, max_pixels) as image:
        found = format_of(image)
        if SNIFFED[sniffed] != found:
            raise UnsupportedMedia("The file's contents do not match an allowed image type.")
        return Header(found, FORMATS[found], image.width, image.height)
