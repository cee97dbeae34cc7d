"""Output sizes for width/height/fit, and gamma-correct resampling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shared.errors import TooLarge
from worker.resize import output_size, resize


def test_scale_down_fits_inside_and_never_enlarges() -> None:
    assert output_size(800, 600, 400, 400, "scale-down") == ((400, 300), None)
    assert output_size(800, 600, 1600, None, "scale-down") == ((800, 600), None)
    assert output_size(800, 600, None, None, "scale-down") == ((800, 600), None)


def test_contain_enlarges_and_cover_crops_to_fill() -> None:
    assert output_size(800, 600, 1600, 1600, "contain") == ((1600, 1200), None)
    assert output_size(800, 600, 300, 300, "cover") == ((400, 300), (300, 300))


def test_thin_white_lines_keep_their_brightness() -> None:
    # Alternating black/white columns halve to mid-grey in linear light (188), not sRGB 128.
    stripes = np.zeros((8, 16), dtype=np.uint8)
    stripes[:, ::2] = 255
    image = Image.fromarray(np.stack([stripes] * 3, axis=2), mode="RGB")
    small = resize(image, (8, 4))
    assert 175 < np.asarray(small)[2, 4, 0] < 200


def test_transparent_pixels_do_not_bleed_colour() -> None:
    image = Image.new("RGBA", (16, 16), (255, 0, 0, 255))
    image.paste((0, 255, 0, 0), (0, 0, 8, 16))
    small = np.asarray(resize(image, (4, 4)))
    assert small[1, 2, 1] == 0 and small[1, 2, 3] > 0
    assert small[1, 0, 3] == 0


def test_enlarging_is_bounded_per_side_and_in_pixels() -> None:
    assert output_size(100, 50, 400, 400, "contain") == ((400, 200), None)
    assert output_size(100, 100, 400, 300, "cover") == ((400, 400), (400, 300))
    for fit in ("contain", "cover"):
        with pytest.raises(TooLarge, match="at most 4 times"):
            output_size(64, 64, 3000, 3000, fit)
        with pytest.raises(TooLarge, match="at most 4 times"):
            output_size(64, 64, 300, None, fit)
    with pytest.raises(TooLarge, match="50,000,000"):
        output_size(4000, 3000, 16000, 12000, "contain", max_pixels=50_000_000)
    assert output_size(64, 64, 3000, 3000, "scale-down") == ((64, 64), None)
