"""Small real images made with Pillow for the tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter

#: The shared image corpus (read-only), beside the checkout; tests that need it skip without it.
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def photo(width: int = 320, height: int = 240) -> Image.Image:
    """A smooth colourful RGB image that compresses like a photo."""
    image = Image.linear_gradient("L").resize((width, height))
    other = image.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    return Image.merge("RGB", (image, other, Image.eval(image, lambda v: 255 - v)))


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    """The image saved in `fmt` as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg(quality: int = 95, **params: Any) -> bytes:
    """A high-quality JPEG photo, which re-encoding makes smaller."""
    return encode(photo(), "JPEG", quality=quality, **params)


def png_with_alpha() -> bytes:
    """An RGBA PNG with a transparent half."""
    image = photo(200, 100).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((200, 100)))
    return encode(image, "PNG")


def saturated(width: int = 192, height: int = 128) -> Image.Image:
    """Fine detail in saturated red and blue: 4:2:0 chroma subsampling blurs it at any quality."""
    red = Image.new("L", (width, height))
    blue = Image.new("L", (width, height))
    red.putdata([230 if (x // 3 + y // 5) % 2 == 0 else 20 for y in range(height) for x in range(width)])
    blue.putdata([20 if (x // 4 + y // 3) % 2 == 0 else 220 for y in range(height) for x in range(width)])
    green = Image.linear_gradient("L").rotate(90).resize((width, height)).point(lambda v: v // 6)
    return Image.merge("RGB", (red, green, blue)).filter(ImageFilter.GaussianBlur(0.6))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def palette_frames(colours: int = 200) -> list[Image.Image]:
    """Two 64x64 palette frames, each using `colours` distinct palette entries in other places."""
    palette = bytes((index * 37 + channel * 91) % 256 for index in range(256) for channel in range(3))
    frames = []
    for shift in (0, colours // 2):
        frame = Image.new("P", (64, 64))
        frame.putdata([(pixel // 20 + shift) % colours for pixel in range(64 * 64)])
        frame.putpalette(palette)
        frames.append(frame)
    return frames


def palette_apng(colours: int = 200) -> bytes:
    """A two-frame animated PNG stored as a palette image (one PLTE for every frame)."""
    frames = palette_frames(colours)
    return encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)


def rotated_jpeg() -> bytes:
    """A 320x240 JPEG whose EXIF says 'rotate 90 degrees clockwise' (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg(exif=exif.tobytes())


def mpo() -> bytes:
    """A two-picture MPO (a JPEG with a second picture after it, as stereo cameras write)."""
    return encode(photo(), "MPO", quality=95, save_all=True, append_images=[photo(160, 120)])
