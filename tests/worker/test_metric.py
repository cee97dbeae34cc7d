"""The fast SSIMULACRA2 must agree with the reference `ssimulacra2` package."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFilter
from ssimulacra2 import compute_ssimulacra2

from tests import images
from worker import memory, metric
from worker.metric import Reference


def test_scores_match_the_reference_package(tmp_path: Path) -> None:
    source = images.photo(96, 72)
    source.save(tmp_path / "source.png")
    reference = Reference(source)
    for quality in (20, 60, 95):
        data = images.encode(source, "JPEG", quality=quality)
        (tmp_path / "candidate.jpg").write_bytes(data)
        expected = compute_ssimulacra2(str(tmp_path / "source.png"), str(tmp_path / "candidate.jpg"))
        with Image.open(io.BytesIO(data)) as candidate:
            assert abs(reference.score(candidate) - expected) < 0.05


def test_identical_scores_100_and_blur_scores_lower() -> None:
    source = Image.effect_mandelbrot((64, 48), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    reference = Reference(source)
    assert reference.score(source.copy()) == 100.0
    assert reference.score(source.filter(ImageFilter.GaussianBlur(2))) < 90.0


def test_alpha_counts_what_shows_on_dark_and_light_backgrounds() -> None:
    source = images.photo(64, 48).convert("RGBA")
    alpha = Image.new("L", source.size, 255)
    alpha.paste(0, (0, 0, 32, 48))  # the left half is fully transparent
    source.putalpha(alpha)
    reference = Reference(source)
    hidden = source.copy()
    hidden.paste((255, 0, 0, 0), (0, 0, 32, 48))  # other colours under alpha 0: nothing shows
    assert reference.score(hidden) == 100.0
    faded = source.copy()
    faded.putalpha(Image.new("L", source.size, 128))  # half transparent: shows on either background
    assert reference.score(faded) < 50.0


def test_bands_give_the_whole_image_score(monkeypatch: pytest.MonkeyPatch) -> None:
    # Odd sizes, bands that split every scale (and a last band shorter than the blur's halo).
    source = images.photo(101, 75)
    candidate = Image.open(io.BytesIO(images.encode(source, "JPEG", quality=40)))
    whole = Reference(source).score(candidate)
    monkeypatch.setattr(metric, "BAND_ROWS", 8)
    assert abs(Reference(source).score(candidate) - whole) < 1e-3
    monkeypatch.setattr(metric, "CACHE_PIXELS", 0)  # the source's half recomputed for every score
    reference = Reference(source)
    assert abs(reference.score(candidate) - whole) < 1e-3 and abs(reference.score(candidate) - whole) < 1e-3


def test_opencv_running_out_of_memory_is_a_memory_error() -> None:
    # A 19 GB plane under a cap: OpenCV's own allocation fails (cv2.error), reported as MemoryError.
    small = np.zeros((8, 8, 3), dtype=np.float32)
    with pytest.raises(MemoryError), memory.capped(memory.address_space_mib() + 64), metric._memory_errors():
        cv2.resize(small, (40000, 40000))
