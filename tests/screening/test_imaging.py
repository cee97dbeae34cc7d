"""Type sniffing, header checks and the translation of Pillow's errors."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, UnidentifiedImageError

from screening import imaging
from shared.errors import CorruptImage, ImgpressError, TooLarge, UnsupportedMedia
from tests import images


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (images.jpeg(), "image/jpeg"),
        (images.png_with_alpha(), "image/png"),
        (images.encode(images.photo(), "GIF"), "image/gif"),
        (images.encode(images.photo(), "WEBP"), "image/webp"),
    ],
)
def test_sniff_accepts_the_allowed_types(data: bytes, expected: str) -> None:
    assert imaging.sniff(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        images.encode(images.photo(), "BMP"),
        images.encode(images.photo(), "TIFF"),
        b"push graphic-context\nviewbox 0 0 640 480\nimage over 0,0 0,0 'https://x/y.jpg'\n",
        b'<svg xmlns="http://www.w3.org/2000/svg"></svg>',
        b"%!PS-Adobe-3.0 EPSF-3.0\n",
        b"",
    ],
)
def test_sniff_refuses_everything_else(data: bytes) -> None:
    with pytest.raises(UnsupportedMedia):
        imaging.sniff(data)


def test_header_must_match_the_sniffed_type(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(images.jpeg())
    assert imaging.read_header(path, "image/jpeg", 10**6).width == 320
    with pytest.raises(UnsupportedMedia):
        imaging.read_header(path, "image/png", 10**6)


def test_header_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(images.jpeg())
    with pytest.raises(TooLarge):
        imaging.read_header(path, "image/jpeg", 320 * 240 - 1)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0)])
def test_zero_pixels_is_corrupt(width: int, height: int) -> None:
    with pytest.raises(CorruptImage):
        imaging.check_pixels(width, height, 100)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (OSError("broken data stream"), CorruptImage),
        (ValueError("tile cannot extend outside image"), CorruptImage),
        (SyntaxError("not a PNG file"), CorruptImage),
        (IndexError("list index out of range"), CorruptImage),
        (TypeError("bad"), CorruptImage),
        (KeyError("x"), CorruptImage),
        (EOFError(), CorruptImage),
        (struct.error("unpack"), CorruptImage),
        (zlib.error("bad"), CorruptImage),
        (UnidentifiedImageError("cannot identify /secret/path"), CorruptImage),
        (Image.DecompressionBombError("Image size (9 pixels) exceeds"), TooLarge),
        (MemoryError(), TooLarge),
    ],
)
def test_every_pillow_error_becomes_an_imgpress_error(
    raised: Exception, expected: type[ImgpressError]
) -> None:
    with pytest.raises(expected) as caught, imaging.decoding_errors():
        raise raised
    # Pillow's text (which can hold paths and internals) never reaches the message.
    assert str(raised) not in caught.value.message or not str(raised)
