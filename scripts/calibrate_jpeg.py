#!/usr/bin/env python3
"""Calibration (not a test): the table quality each JPEG encoder needs to score what Pillow's
JPEG scores at each quality number of `worker.jpeg.TABLE_QUALITY`.

For each point and each of six tuning photos (Kodak 01, 03, 05, wiki002, 004, 007), the lowest
table quality whose SSIMULACRA2 (`worker.metric`) is at least Pillow's at that quality number;
prints the median over the photos per point, as the tuple to paste into TABLE_QUALITY.

    .venv/bin/python scripts/calibrate_jpeg.py [--encoder turbo|trellis]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker import jpeg, ycc
from worker.metric import Reference

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
PHOTOS = [CORPUS / "photos" / f"kodim0{n}.png" for n in (1, 3, 5)] + [
    CORPUS / "photos-extra" / f"wiki00{n}.png" for n in (2, 4, 7)
]


def score(reference: Reference, data: bytes) -> float:
    with Image.open(io.BytesIO(data)) as decoded:
        return reference.score(decoded)


def lowest_level(reference: Reference, floor: float, encode: Callable[[int], bytes]) -> int:
    """The lowest table quality scoring `floor` or more (bisection; 100 if none does)."""
    low, high, best = 1, 100, 100
    while low <= high:
        middle = (low + high) // 2
        if score(reference, encode(middle)) >= floor:
            best, high = middle, middle - 1
        else:
            low = middle + 1
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=("turbo", "trellis"), default="turbo")
    encoder = parser.parse_args().encoder
    numbers = [number for number, _ in jpeg.TABLE_QUALITY[encoder]]
    levels: dict[int, list[int]] = {number: [] for number in numbers}
    for path in PHOTOS:
        image = Image.open(path).convert("RGB")
        reference = Reference(image)

        pixels = ycc.compensated(image) if encoder == "trellis" else None

        def encode(level: int, image: Image.Image = image, pixels: Any = pixels) -> bytes:
            if pixels is not None:
                return jpeg.mozjpeg(pixels, jpeg.jpeg_tables(level, encoder))
            buffer = io.BytesIO()
            tables = [[int(s) for s in t.flatten()] for t in jpeg.jpeg_tables(level, encoder)]
            image.save(buffer, "JPEG", qtables=tables, subsampling="4:2:0")
            return buffer.getvalue()

        for number in numbers:
            pillow = io.BytesIO()
            image.save(pillow, "JPEG", quality=number)
            levels[number].append(lowest_level(reference, score(reference, pillow.getvalue()), encode))
        print(path.name, [levels[number][-1] for number in numbers], file=sys.stderr)
    points = [(number, round(statistics.median(levels[number]))) for number in numbers]
    # The ends stay fixed: quality 1 is the coarsest tables, 100 the finest.
    points = [(1, 1)] + [(n, min(max(level, 1), 100)) for n, level in points[1:-1]] + [(100, 100)]
    print(points)


if __name__ == "__main__":
    main()
