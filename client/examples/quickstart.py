"""Compress one image, then a batch, with the imgpress client; type-checked with `mypy --strict`.

python quickstart.py photo.jpg other.png    # server: $IMGPRESS_URL or http://127.0.0.1:8000
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from imgpress import AsyncClient, Client, ImgpressError, Result

SERVER = os.environ.get("IMGPRESS_URL", "http://127.0.0.1:8000")


def one(path: Path) -> None:
    """Compress one file to WebP and save it next to the original, unless that name is taken."""
    with Client(SERVER) as imgpress:
        result = imgpress.compress(path, quality=70, format="webp", effort="fast")
        try:
            saved = result.save(path.parent)  # a .webp input's output would be its own name
        except FileExistsError as exc:
            print(f"{path.name}: not saved: {exc}")
            return
        print(f"{path.name}: {result.job.input.bytes} -> {len(result.data)} bytes ({saved})")


def batch(paths: list[Path]) -> None:
    """Upload the files as one batch, wait for it, and report each job and each refused file."""
    with Client(SERVER) as imgpress:
        created = imgpress.create_batch(paths, quality="auto", target="high")
        done = imgpress.wait_batch(created.id, timeout=120)
        for job in done.jobs:
            print(f"batch job {job.input.filename}: {job.status}, saved {job.saved_bytes} bytes")
        for refused in done.rejected:
            print(f"batch refused {refused.filename}: {refused.error.code}")


async def many(paths: list[Path]) -> None:
    """Compress the files concurrently; each file gets its result or its error, in order."""
    async with AsyncClient(SERVER) as imgpress:
        outcomes: list[Result | ImgpressError] = await imgpress.compress_many(paths, max_bytes=50_000)
        for path, outcome in zip(paths, outcomes, strict=True):
            if isinstance(outcome, Result):
                print(f"many {path.name}: {len(outcome.data)} bytes")
            else:
                print(f"many {path.name}: failed ({outcome.code}: {outcome.message})")


if __name__ == "__main__":
    files = [Path(name) for name in sys.argv[1:]]
    one(files[0])
    batch(files)
    asyncio.run(many(files))
