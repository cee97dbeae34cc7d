"""The compensated YCbCr that trellis JPEGs are written from keeps each pixel's luminance."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from worker import jpeg, ycc

#: Steps of 1 everywhere: the JPEG keeps the pixels it is given, up to the chroma subsampling.
FINEST = np.ones((2, 8, 8), dtype=np.uint16)


def colour_edges(height: int = 40, width: int = 36) -> Image.Image:
    """Saturated red and cyan columns one pixel wide, then red and green rows: colour changes
    inside every 2x2 chroma block, so averaging the chroma shifts the luminance."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, 0::2] = (230, 20, 20)
    pixels[:, 1::2] = (20, 200, 220)
    pixels[height // 2 :: 2, :] = (40, 220, 30)
    return Image.fromarray(pixels)


def luminance(image: Image.Image) -> npt.NDArray[np.float64]:
    values = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    linear = np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
    result: npt.NDArray[np.float64] = linear @ np.array([0.2126, 0.7152, 0.0722])
    return result


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def test_grey_pixels_convert_as_jpeg_does() -> None:
    grey = Image.fromarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8), (6, 1)), "L").convert("RGB")
    pixels = ycc.compensated(grey)
    assert (pixels[..., 0] == np.asarray(grey)[..., 0]).all()
    assert (pixels[..., 1:] == 128).all()


def test_decoded_luminance_is_closer_to_the_source() -> None:
    image = colour_edges()
    source = luminance(image)
    plain = luminance(decoded(jpeg.mozjpeg(np.asarray(image.convert("YCbCr")), FINEST)))
    compensated = luminance(decoded(jpeg.mozjpeg(image, FINEST)))
    assert np.abs(compensated - source).mean() < 0.5 * np.abs(plain - source).mean()


@pytest.mark.parametrize("size", [(37, 601), (64, 530)])
def test_stripes_join_without_seams(size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    width, height = size
    image = colour_edges(height, width).rotate(17, expand=False, fillcolor=(250, 250, 0))
    striped = ycc.compensated(image)
    monkeypatch.setattr(ycc, "_STRIPE", 4096)
    assert (striped == ycc.compensated(image)).all()
