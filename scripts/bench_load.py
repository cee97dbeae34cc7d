#!/usr/bin/env python3
"""Load test: many uploads at high concurrency against a running imgpress, loopback only.

    .venv/bin/python scripts/bench_load.py --url http://127.0.0.1:8000 --count 2000 --concurrency 64 \
        --data-dir data --redis-url redis://127.0.0.1:6379/0 --settle 40

Reports accepted, refused with 503 (back-pressure), lost (accepted but never finished or
failed), other 5xx, transport errors, latency percentiles (upload → job end) and, after
`--settle` seconds (retention + one sweep), the files and per-job Redis keys left behind.
Bounded in count and time; ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from measure import latency_summary
from PIL import Image

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Tally:
    """What happened to the uploads."""

    accepted: int = 0
    finished: int = 0
    failed: int = 0
    refused_503: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    other_4xx: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    accepted_ids: list[str] = field(default_factory=list)


def sample_image(index: int) -> bytes:
    """A small JPEG, a little different each time."""
    image = Image.linear_gradient("L").resize((160, 120)).convert("RGB")
    image.putpixel((index % 160, (index // 160) % 120), (255, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


async def one(client: httpx.AsyncClient, index: int, tally: Tally, deadline: float) -> None:
    started = time.monotonic()
    try:
        response = await client.post(
            "/v1/jobs", content=sample_image(index), headers={"content-type": "image/jpeg"}
        )
    except httpx.TransportError:
        tally.transport_errors += 1
        return
    if response.status_code == 503:
        tally.refused_503 += 1
        return
    if response.status_code >= 500:
        tally.server_errors += 1
        return
    if response.status_code != 202:
        tally.other_4xx += 1
        return
    tally.accepted += 1
    job_id = response.json()["id"]
    tally.accepted_ids.append(job_id)
    while time.monotonic() < deadline:
        try:
            status = await client.get(f"/v1/jobs/{job_id}", params={"wait": 30})
        except httpx.TransportError:
            tally.transport_errors += 1
            await asyncio.sleep(0.5)
            continue
        if status.status_code >= 500:
            if status.status_code != 503:
                tally.server_errors += 1
            await asyncio.sleep(0.5)
            continue
        state = status.json().get("status")
        if state in ("finished", "failed"):
            setattr(tally, state, getattr(tally, state) + 1)
            tally.latencies_ms.append((time.monotonic() - started) * 1000)
            return


async def run(url: str, count: int, concurrency: int, max_seconds: float) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def runner() -> None:
            while time.monotonic() < deadline:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await one(client, index, tally, deadline)

        await asyncio.gather(*(runner() for _ in range(concurrency)))
    return tally


def leftovers(data_dir: Path | None, redis_url: str | None, ids: list[str]) -> dict[str, int]:
    """Files under the data dir, and per-job Redis keys that outlived retention."""
    found: dict[str, int] = {}
    if data_dir is not None:
        found["files_left"] = sum(
            1 for path in data_dir.rglob("*") if path.is_file() and "redis" not in path.parts
        )
    if redis_url is not None:
        import redis

        connection = redis.Redis.from_url(redis_url)
        per_job = 0
        for job_id in ids:
            per_job += connection.exists(
                f"imgpress:job:{job_id}", f"imgpress:lease:{job_id}", f"rq:job:{job_id}"
            )
            per_job += connection.zscore("imgpress:expiry", job_id) is not None
            per_job += bool(connection.sismember("imgpress:started", job_id))
        found["redis_keys_left"] = per_job
        # Kept on purpose so deleted ids answer 410; they expire by themselves after 7 days.
        found["gone_markers"] = sum(1 for job_id in ids if connection.exists(f"imgpress:gone:{job_id}"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=600, help="stop sending and waiting after this")
    parser.add_argument("--data-dir", type=Path, help="the service's IMGPRESS_DATA_DIR, to count files left")
    parser.add_argument("--redis-url", help="the service's IMGPRESS_REDIS_URL, to count keys left")
    parser.add_argument(
        "--settle", type=float, default=0, help="seconds to wait (retention + sweep) before counting"
    )
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname not in LOOPBACK:
        parser.error("this load test only targets a service on this machine (loopback)")
    if not 0 < args.count <= 100_000 or not 0 < args.concurrency <= 1024:
        parser.error("--count must be 1..100000 and --concurrency 1..1024")

    started = time.monotonic()
    tally = asyncio.run(run(args.url, args.count, args.concurrency, args.max_seconds))
    elapsed = time.monotonic() - started
    if args.settle:
        time.sleep(args.settle)
    report = {
        "sent": args.count,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 2),
        "accepted": tally.accepted,
        "refused_503": tally.refused_503,
        "finished": tally.finished,
        "failed": tally.failed,
        "lost": tally.accepted - tally.finished - tally.failed,
        "server_errors_5xx": tally.server_errors,
        "transport_errors": tally.transport_errors,
        "other_4xx": tally.other_4xx,
        **latency_summary(tally.latencies_ms),
        **leftovers(args.data_dir, args.redis_url, tally.accepted_ids),
    }
    for key, value in report.items():
        print(f"{key:>20}: {value}", file=sys.stderr)
    print(json.dumps(report))
    clean = report["lost"] == 0 and report["server_errors_5xx"] == 0
    clean = clean and report.get("files_left", 0) == 0 and report.get("redis_keys_left", 0) == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
