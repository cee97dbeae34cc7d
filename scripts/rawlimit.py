"""The raw limit the end-to-end benchmarks compare against: Pillow's decode and encode (the
tutorial app's work), or imgpress's own pipeline, in 2 processes with no HTTP, queue or client."""

from __future__ import annotations

import io
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.options import Options
from worker import pipeline


@dataclass(frozen=True)
class Encode:
    """One raw encode: its CPU seconds, the kernel's part of them, and its wall-clock seconds."""

    cpu: float
    kernel: float
    wall: float


def _timed(encode: Callable[[], int]) -> tuple[Encode, int]:
    """One encode, timed; `encode` returns the output's size."""
    clock, started = time.perf_counter(), time.process_time()
    kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    size = encode()
    spent = Encode(
        time.process_time() - started,
        resource.getrusage(resource.RUSAGE_SELF).ru_stime - kernel,
        time.perf_counter() - clock,
    )
    return spent, size


def _pillow_one(data: bytes, quality: int, effort: str) -> tuple[Encode, int]:
    """What the tutorial app does with one upload, timed: Pillow's decode and JPEG encode."""

    def encode() -> int:
        output = io.BytesIO()
        Image.open(io.BytesIO(data)).save(output, "JPEG", quality=quality)
        return len(output.getvalue())

    return _timed(encode)


def _raw_one(data: bytes, quality: int, effort: str) -> tuple[Encode, int]:
    """One run of imgpress's own pipeline, timed."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "input"
        source.write_bytes(data)
        options = Options.parse({"quality": str(quality), "effort": effort})
        limits = pipeline.Limits(max_pixels=200_000_000, max_frames=1000)
        return _timed(
            lambda: (
                pipeline.compress(
                    source, Path(folder) / "output", Path(folder) / "temp", options, limits
                ).bytes
            )
        )


#: The images of the raw run in hand: set before the pool forks, so no image crosses a pipe.
_RAW_IMAGES: list[bytes] = []


def _raw_share(args: tuple[range, int, str, bool]) -> list[tuple[Encode, int]]:
    """One process's share of a raw run, encoded one after another."""
    indexes, quality, effort, pillow = args
    function = _pillow_one if pillow else _raw_one
    return [function(_RAW_IMAGES[i % len(_RAW_IMAGES)], quality, effort) for i in indexes]


def run_raw(
    images: list[bytes], count: int, quality: int, effort: str, pillow: bool = False
) -> tuple[float, list[Encode], list[int]]:
    """Wall seconds for `count` encodes in 2 processes, each encode, and each output's size:
    Pillow's (`pillow`) or imgpress's own pipeline at `effort`. Each process loops over its half
    with the images already in memory, so nothing but the encodes is timed: the raw limit."""
    global _RAW_IMAGES
    _RAW_IMAGES = images
    shares = [(range(start, count, 2), quality, effort, pillow) for start in (0, 1)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_raw_share, [(range(start, 2), quality, effort, pillow) for start in (0, 1)])  # warm up
        started = time.perf_counter()
        results = [item for share in pool.map(_raw_share, shares, chunksize=1) for item in share]
        return time.perf_counter() - started, [r[0] for r in results], [r[1] for r in results]
