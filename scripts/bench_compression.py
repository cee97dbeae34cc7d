#!/usr/bin/env python3
"""Compression benchmark (not a test): bytes and CPU per effort against Pillow's own encoders.

Photos: the reference is Pillow's JPEG at quality 75 (`Image.save(out, "JPEG", quality=75)`).
For each effort and format, imgpress's encoder is run at the lowest quality number whose
SSIMULACRA2 (the `ssimulacra2` package, against the lossless source) is at least the
reference's: bytes / reference bytes at equal-or-better score, and the CPU of that one encode
(`time.process_time`, best of 3) over Pillow's. Also per effort: JPEG at the same quality number
as the reference (75), with its score, the bytes a user of a fixed quality gets.
Graphics: lossless PNG per effort against Pillow's PNG (`Image.save(out, "PNG")`), pixel-exact.

    .venv/bin/python scripts/bench_compression.py [--set tune|check|all] [--quick] [--formats jpeg,webp,avif]

`--set`: tune = Kodak 01-06 and the first 6 of photos-extra (what the encoders were tuned on),
check = the other 12; `--quick`: 2 photos of the set and 3 graphics, JPEG only. Prints markdown
tables, then one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageChops
from ssimulacra2 import compute_ssimulacra2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.options import EFFORTS
from worker import codecs
from worker.metric import Reference

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
NONE = codecs.Metadata()
REFERENCE_QUALITY = 75


def photo_set(name: str) -> list[Path]:
    """The photos of a named set: tune, check or all."""
    kodak = sorted((CORPUS / "photos").glob("*.png"))
    extra = sorted((CORPUS / "photos-extra").glob("*.png"))
    tune = kodak[:6] + extra[:6]
    if name == "tune":
        return tune
    if name == "check":
        return [path for path in kodak + extra if path not in tune]
    return kodak + extra


def reference_score(source: Path, data: bytes) -> float:
    """SSIMULACRA2 from the reference package (file paths in, like its CLI)."""
    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / "candidate.img"
        candidate.write_bytes(data)
        return float(compute_ssimulacra2(str(source), str(candidate)))


def cpu_ms(function: Callable[[], object], repeat: int = 3) -> float:
    """The least CPU time (ms) of `repeat` calls: the machine is shared, CPU time is what we own."""
    best = math.inf
    for _ in range(repeat):
        started = time.process_time()
        function()
        best = min(best, time.process_time() - started)
    return best * 1000.0


def pillow(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def lowest_passing(source: Path, reference: Reference, floor: float, encode: Callable[[int], bytes]) -> int:
    """The lowest quality whose encode scores `floor` or more: bisection on our metric, then up
    while the reference package disagrees (they differ in the third decimal)."""
    low, high, best = 1, 100, 100
    while low <= high:
        middle = (low + high) // 2
        with Image.open(io.BytesIO(encode(middle))) as decoded:
            if reference.score(decoded) >= floor:
                best, high = middle, middle - 1
            else:
                low = middle + 1
    while best < 100 and reference_score(source, encode(best)) < floor:
        best += 1
    return best


def bench_photo(path: Path, formats: list[str]) -> dict[str, float]:
    """Ratios and CPU for one photo: keys like `jpeg-fast-bytes`, `jpeg-fast-cpu`."""
    image = Image.open(path).convert("RGB")
    reference = Reference(image)
    baseline = pillow(image, "JPEG", quality=REFERENCE_QUALITY)
    floor = reference_score(path, baseline)
    baseline_ms = cpu_ms(lambda: pillow(image, "JPEG", quality=REFERENCE_QUALITY))
    row: dict[str, float] = {"megapixels": image.width * image.height / 1e6, "pillow-ms": baseline_ms}
    for fmt in formats:
        for effort in EFFORTS:

            def encode(level: int, fmt: str = fmt, effort: str = effort) -> bytes:
                return codecs.encode(image, fmt, level, NONE, effort)

            level = lowest_passing(path, reference, floor, encode)
            data = encode(level)
            row[f"{fmt}-{effort}-bytes"] = len(data) / len(baseline)
            row[f"{fmt}-{effort}-cpu"] = cpu_ms(lambda level=level: encode(level)) / baseline_ms
    for effort in EFFORTS:
        same = codecs.encode(image, "jpeg", REFERENCE_QUALITY, NONE, effort)
        row[f"same-{effort}-bytes"] = len(same) / len(baseline)
        row[f"same-{effort}-score"] = reference_score(path, same) - floor
    return row


def bench_graphic(path: Path) -> dict[str, float]:
    """Lossless PNG per effort against Pillow's PNG; raises if a pixel differs."""
    with Image.open(path) as opened:
        image = opened.convert("RGBA" if codecs.has_alpha(opened) else "RGB")
    baseline = pillow(image, "PNG")
    baseline_ms = cpu_ms(lambda: pillow(image, "PNG"), repeat=1)
    row: dict[str, float] = {}
    for effort in EFFORTS:
        data = codecs.encode_png(image, NONE, effort)
        with Image.open(io.BytesIO(data)) as decoded:
            if ImageChops.difference(decoded.convert(image.mode), image).getbbox() is not None:
                raise SystemExit(f"{path.name}: lossless PNG at effort {effort} changed pixels")
        row[f"png-{effort}-bytes"] = len(data) / len(baseline)
        row[f"png-{effort}-cpu"] = (
            cpu_ms(lambda effort=effort: codecs.encode_png(image, NONE, effort), repeat=1) / baseline_ms
        )
    return row


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summary(rows: list[dict[str, float]], key: str) -> float:
    """Geometric mean of a ratio over the rows (a plain mean for score differences)."""
    values = [row[key] for row in rows]
    return sum(values) / len(values) if key.endswith("-score") else geomean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("tune", "check", "all"), default="check")
    parser.add_argument("--graphics", type=Path, default=CORPUS / "graphics")
    parser.add_argument("--formats", default="jpeg,webp,avif", help="comma-separated lossy formats")
    parser.add_argument("--quick", action="store_true", help="2 photos and 3 graphics, JPEG only")
    args = parser.parse_args()
    photos = photo_set(args.set)
    graphics = sorted(args.graphics.glob("*.png"))
    formats = args.formats.split(",")
    if args.quick:
        photos, graphics, formats = photos[:1] + photos[-1:], graphics[:3], ["jpeg"]
    photo_rows = []
    for path in photos:
        photo_rows.append(bench_photo(path, formats))
        print(path.name, json.dumps({k: round(v, 3) for k, v in photo_rows[-1].items()}), file=sys.stderr)
    graphic_rows = []
    for path in graphics:
        graphic_rows.append(bench_graphic(path))
        print(path.name, json.dumps({k: round(v, 3) for k, v in graphic_rows[-1].items()}), file=sys.stderr)

    report: dict[str, float] = {}
    print(f"Photos: {args.set} set, {len(photos)} photos; reference Pillow JPEG q{REFERENCE_QUALITY}.\n")
    print("| format | effort | bytes vs Pillow q75 at equal SSIMULACRA2 | CPU per encode vs Pillow q75 |")
    print("|---|---|---|---|")
    for fmt in formats:
        for effort in EFFORTS:
            size, cpu = (
                summary(photo_rows, f"{fmt}-{effort}-bytes"),
                summary(photo_rows, f"{fmt}-{effort}-cpu"),
            )
            report[f"{fmt}-{effort}-bytes"], report[f"{fmt}-{effort}-cpu"] = size, cpu
            print(f"| {fmt} | {effort} | {size:.3f} | {cpu:.2f}x |")
    print(f"\nJPEG at the same quality number ({REFERENCE_QUALITY}):\n")
    print("| effort | bytes vs Pillow | SSIMULACRA2 minus Pillow's (mean) |")
    print("|---|---|---|")
    for effort in EFFORTS:
        size, score = summary(photo_rows, f"same-{effort}-bytes"), summary(photo_rows, f"same-{effort}-score")
        report[f"same-{effort}-bytes"], report[f"same-{effort}-score"] = size, score
        print(f"| {effort} | {size:.3f} | {score:+.2f} |")
    if graphic_rows:
        print(f"\nGraphics: {len(graphics)}; lossless PNG against Pillow's PNG (pixel-exact).\n")
        print("| effort | bytes vs Pillow PNG | CPU vs Pillow PNG |")
        print("|---|---|---|")
        for effort in EFFORTS:
            size, cpu = (
                summary(graphic_rows, f"png-{effort}-bytes"),
                summary(graphic_rows, f"png-{effort}-cpu"),
            )
            report[f"png-{effort}-bytes"], report[f"png-{effort}-cpu"] = size, cpu
            print(f"| {effort} | {size:.3f} | {cpu:.1f}x |")
    print(json.dumps({key: round(value, 4) for key, value in report.items()}))


if __name__ == "__main__":
    main()
