#!/usr/bin/env python3
"""imgpress against the FastAPI + Celery tutorial app it replaces, both RUNNING (it starts neither),
with the same photos and clients, alternating in one run, and Pillow's raw limit beside them.

    .venv/bin/python scripts/bench_tutorial.py --tutorial http://127.0.0.1:8120 \
        --imgpress http://127.0.0.1:8112 --count 240 --concurrency 8 [--poll-ms 20]

Each side sends the photos (as scripts/bench_e2e.py loads them) at concurrency C, quality Q:
- `tutorial`: the tutorial app's own flow, multipart `POST /upload`, `GET /task/{id}` every
  --poll-ms until SUCCESS, `GET /download/{id}`;
- `imgpress (drop-in)`: the same client, unchanged, on imgpress's copies of those routes;
- `imgpress fast` / `imgpress balanced`: imgpress's own way, one `POST /v1/jobs?wait=` with
  `Accept: image/*` (bench_e2e's upload) at that effort.
Every output is checked to be an image. Reports images/s, against Pillow's decode + encode of the
same images in 2 processes (the raw limit, rawlimit.run_raw) and against the tutorial app, mean
output bytes and latency. Prints a markdown table, then one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from bench_e2e import DEFAULT_IMAGES, Way, load_images, one, split
from measure import latency_summary
from PIL import Image
from rawlimit import run_raw

#: Give up on one image after this long (seconds).
PATIENCE = 60.0


def tutorial_one(client: httpx.Client, data: bytes, quality: int, poll: float) -> tuple[float, int]:
    """One photo through the tutorial app's flow: upload, poll the task, download. Returns the
    latency (ms) and the output's size."""
    started = time.perf_counter()
    answer = client.post(
        "/upload", data={"quality": str(quality)}, files={"file": ("photo.jpg", data, "image/jpeg")}
    )
    answer.raise_for_status()
    task_id = answer.json()["data"]["task_id"]
    while True:
        status = client.get(f"/task/{task_id}").json()["data"]["status"]
        if status == "SUCCESS":
            break
        if status in ("FAILURE", "REVOKED") or time.perf_counter() - started > PATIENCE:
            raise RuntimeError(f"task {task_id} ended {status}")
        time.sleep(poll)
    output = client.get(f"/download/{task_id}")
    output.raise_for_status()
    latency = (time.perf_counter() - started) * 1000
    with Image.open(io.BytesIO(output.content)) as image:
        image.verify()
    return latency, len(output.content)


@dataclass
class Side:
    """One way of compressing the photos and what it did over the run."""

    name: str
    send: Callable[[httpx.Client, bytes], tuple[float, int]]
    clients: list[httpx.Client]
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def run(self, images: list[bytes], count: int) -> None:
        """`count` photos, one thread per client, each client kept for the whole run."""
        pairs = [(self.clients[i % len(self.clients)], images[i % len(images)]) for i in range(count)]
        started = time.perf_counter()
        with ThreadPoolExecutor(len(self.clients)) as pool:
            results = list(pool.map(lambda pair: self.send(*pair), pairs))
        self.wall += time.perf_counter() - started
        self.latencies += [latency for latency, _ in results]
        self.sizes += [size for _, size in results]

    @property
    def images_per_s(self) -> float:
        return len(self.sizes) / self.wall if self.wall else 0.0


def native(effort: str, quality: int) -> Callable[[httpx.Client, bytes], tuple[float, int]]:
    """imgpress's own one-request way at `effort`."""

    def send(client: httpx.Client, data: bytes) -> tuple[float, int]:
        trip = one(client, data, Way(), {"quality": str(quality), "effort": effort})
        return trip.latency_ms, trip.bytes

    return send


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tutorial", required=True, help="URL of the running tutorial app")
    parser.add_argument("--imgpress", required=True, help="URL of the running imgpress API")
    parser.add_argument("--images", default=DEFAULT_IMAGES)
    parser.add_argument("--count", type=int, default=240, help="photos per side")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--quality", type=int, default=75)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-ms", type=float, default=20.0, help="the tutorial flow's polling interval")
    args = parser.parse_args(argv)
    images = load_images(args.images, None, 12)
    poll = args.poll_ms / 1000

    def clients(url: str) -> list[httpx.Client]:
        return [httpx.Client(base_url=url, timeout=PATIENCE) for _ in range(args.concurrency)]

    def polled(client: httpx.Client, data: bytes) -> tuple[float, int]:
        return tutorial_one(client, data, args.quality, poll)

    sides = [
        Side("tutorial app", polled, clients(args.tutorial)),
        Side("imgpress (drop-in routes)", polled, clients(args.imgpress)),
        Side("imgpress fast", native("fast", args.quality), clients(args.imgpress)),
        Side("imgpress balanced (default)", native("balanced", args.quality), clients(args.imgpress)),
    ]
    for side in sides:  # warm up, then start the counts afresh
        side.run(images, 2 * args.concurrency)
        side.wall, side.latencies, side.sizes = 0.0, [], []
    pillow_wall, pillow_sizes = 0.0, []
    for part in split(args.count, args.rounds):
        for side in sides:
            side.run(images, part)
            seconds, _, sizes = run_raw(images, part, args.quality, "fast", pillow=True)
            pillow_wall += seconds
            pillow_sizes += sizes
    pillow_rate = len(pillow_sizes) / pillow_wall
    tutorial = sides[0]
    reports = [
        {
            "side": side.name,
            "images": len(side.sizes),
            "images_per_s": round(side.images_per_s, 1),
            "ratio_vs_pillow": round(side.images_per_s / pillow_rate, 3),
            "ratio_vs_tutorial": round(side.images_per_s / tutorial.images_per_s, 2),
            "bytes_vs_pillow": round(statistics.mean(side.sizes) / statistics.mean(pillow_sizes), 3),
            **latency_summary(side.latencies),
        }
        for side in sides
    ]
    print(
        f"\nquality {args.quality}, concurrency {args.concurrency}, {args.count} photos per side in "
        f"{args.rounds} rounds; the tutorial flow polls every {args.poll_ms:g} ms.\n"
    )
    print(
        "| side | images/s | vs Pillow's raw limit | vs the tutorial app | bytes vs Pillow "
        "| latency p50 / p95 |"
    )
    print("|---|---|---|---|---|---|")
    for r in reports:
        print(
            f"| {r['side']} | {r['images_per_s']} | {r['ratio_vs_pillow']}x | {r['ratio_vs_tutorial']}x | "
            f"{r['bytes_vs_pillow']} | {r['latency_ms_p50']} / {r['latency_ms_p95']} ms |"
        )
    print(f"| Pillow (2 processes, no HTTP) | {pillow_rate:.1f} | 1x | | 1 | |")
    print(
        json.dumps({"poll_ms": args.poll_ms, "pillow_images_per_s": round(pillow_rate, 1), "sides": reports})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
