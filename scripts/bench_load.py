#!/usr/bin/env python3
"""Load test: many uploads at high concurrency against a running imgpress, loopback only.

    .venv/bin/python scripts/bench_load.py --url http://127.0.0.1:8000 --count 2000 --concurrency 64 \
        --data-dir data --redis-url redis://127.0.0.1:6379/0 --settle 40

Reports accepted, refused with 503 (back-pressure), lost (accepted, never seen to end and not
deleted: a job already gone, 410, when next read ended unseen), other 5xx, transport errors,
latency percentiles (upload → job end) and, after `--settle` seconds (retention + one
sweep), the files and per-job Redis keys left behind.
Bounded in count and time; ends with one JSON line.

Several APIs sharing one Redis and bucket (two hosts): give `--url` and `--data-dir` once per
host; each upload goes to the next API in turn and is waited for on the one after it, and with
`--download` its result is fetched from there too. `--storage-url s3://bucket/prefix` counts
the objects left (boto3, endpoint and keys from the AWS variables).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import time
from collections import Counter
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
    #: Ended and already deleted (410) when next read: the retention was shorter than the wait.
    gone_unseen: int = 0
    refused_503: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    other_4xx: int = 0
    downloaded: int = 0
    download_errors: int = 0
    #: Why downloads failed: "HTTP 410", "ReadTimeout", ...
    download_failures: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    accepted_ids: list[str] = field(default_factory=list)
    #: The last answer about each job that has not ended yet: its status, or the HTTP code.
    last_seen: dict[str, str] = field(default_factory=dict)


def sample_image(index: int) -> bytes:
    """A small JPEG, a little different each time."""
    image = Image.linear_gradient("L").resize((160, 120)).convert("RGB")
    image.putpixel((index % 160, (index // 160) % 120), (255, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


async def one(
    client: httpx.AsyncClient,
    index: int,
    tally: Tally,
    deadline: float,
    other: httpx.AsyncClient | None = None,
    download: bool = False,
) -> None:
    """Upload one image to `client`; wait for its end (and download it) on `other`."""
    other = other or client
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
            status = await other.get(f"/v1/jobs/{job_id}", params={"wait": 30})
        except httpx.TransportError:
            tally.transport_errors += 1
            await asyncio.sleep(0.5)
            continue
        if status.status_code >= 500:
            if status.status_code != 503:
                tally.server_errors += 1
            await asyncio.sleep(0.5)
            continue
        if status.status_code == 410:
            # A job is deleted only after it ended (its expiry) or by its owner: it was not lost.
            tally.gone_unseen += 1
            tally.last_seen.pop(job_id, None)
            return
        state = status.json().get("status")
        tally.last_seen[job_id] = state or f"HTTP {status.status_code}"
        if state in ("finished", "failed"):
            del tally.last_seen[job_id]
            setattr(tally, state, getattr(tally, state) + 1)
            tally.latencies_ms.append((time.monotonic() - started) * 1000)
            if download and state == "finished":
                await fetch_result(other, job_id, tally)
            return


async def fetch_result(client: httpx.AsyncClient, job_id: str, tally: Tally) -> None:
    """Download a finished job's result (following a presigned redirect); count how it went."""
    try:
        result = await client.get(f"/v1/jobs/{job_id}/result", follow_redirects=True)
    except httpx.TransportError as exc:
        tally.download_errors += 1
        tally.download_failures[type(exc).__name__] += 1
        return
    if result.status_code == 200 and result.content and result.headers["content-type"].startswith("image/"):
        tally.downloaded += 1
    else:
        tally.download_errors += 1
        tally.download_failures[f"HTTP {result.status_code}"] += 1


async def run(urls: list[str], count: int, concurrency: int, max_seconds: float, download: bool) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=limits) for url in urls]
    try:

        async def runner() -> None:
            while time.monotonic() < deadline:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                client, other = clients[index % len(clients)], clients[(index + 1) % len(clients)]
                await one(client, index, tally, deadline, other, download)

        await asyncio.gather(*(runner() for _ in range(concurrency)))
    finally:
        for client in clients:
            await client.aclose()
    return tally


def leftovers(
    data_dirs: list[Path], redis_url: str | None, ids: list[str], storage_url: str | None = None
) -> dict[str, int]:
    """Files under the data dirs, objects in the bucket, and per-job Redis keys that outlived retention."""
    found: dict[str, int] = {}
    if data_dirs:
        found["files_left"] = sum(
            1
            for data_dir in data_dirs
            for path in data_dir.rglob("*")
            if path.is_file() and "redis" not in path.parts
        )
    if storage_url is not None:
        found["objects_left"] = objects_in(storage_url)
    if redis_url is not None:
        import redis

        connection = redis.Redis.from_url(redis_url)
        per_job = 0
        for job_id in ids:
            per_job += connection.exists(
                f"imgpress:job:{job_id}",
                f"imgpress:lease:{job_id}",
                f"rq:job:{job_id}",
                f"imgpress:carried:{job_id}:input",
                f"imgpress:carried:{job_id}:output",
            )
            per_job += connection.zscore("imgpress:expiry", job_id) is not None
            per_job += bool(connection.sismember("imgpress:started", job_id))
        found["redis_keys_left"] = per_job
        # Kept on purpose so deleted ids answer 410; they expire by themselves after 7 days.
        found["gone_markers"] = sum(1 for job_id in ids if connection.exists(f"imgpress:gone:{job_id}"))
    return found


def objects_in(storage_url: str) -> int:
    """How many objects the bucket holds under the URL's prefix (keys, not versions)."""
    import boto3
    from botocore.config import Config

    bucket, _, prefix = storage_url.removeprefix("s3://").partition("/")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(signature_version="s3v4", s3={"addressing_style": "path" if endpoint else "auto"})
    s3 = boto3.client("s3", endpoint_url=endpoint or None, config=config)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.strip("/"))
    return sum(len(page.get("Contents", [])) for page in pages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        action="append",
        help="an API (repeat for several sharing Redis); default http://127.0.0.1:8000",
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=600, help="stop sending and waiting after this")
    parser.add_argument(
        "--data-dir",
        type=Path,
        action="append",
        default=[],
        help="the service's IMGPRESS_DATA_DIR (repeat per host), to count files left",
    )
    parser.add_argument("--storage-url", help="the service's IMGPRESS_STORAGE_URL, to count objects left")
    parser.add_argument("--download", action="store_true", help="download each result (from the next API)")
    parser.add_argument("--redis-url", help="the service's IMGPRESS_REDIS_URL, to count keys left")
    parser.add_argument(
        "--settle", type=float, default=0, help="seconds to wait (retention + sweep) before counting"
    )
    args = parser.parse_args(argv)
    urls = args.url or ["http://127.0.0.1:8000"]
    if any(urlsplit(url).hostname not in LOOPBACK for url in urls):
        parser.error("this load test only targets a service on this machine (loopback)")
    if not 0 < args.count <= 100_000 or not 0 < args.concurrency <= 1024:
        parser.error("--count must be 1..100000 and --concurrency 1..1024")

    started = time.monotonic()
    tally = asyncio.run(run(urls, args.count, args.concurrency, args.max_seconds, args.download))
    elapsed = time.monotonic() - started
    if args.settle:
        time.sleep(args.settle)
    downloads = {
        "downloaded": tally.downloaded,
        "download_errors": tally.download_errors,
        "download_failures": dict(tally.download_failures),
    }
    report = {
        "sent": args.count,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 2),
        "accepted": tally.accepted,
        "refused_503": tally.refused_503,
        "finished": tally.finished,
        "failed": tally.failed,
        "gone_unseen": tally.gone_unseen,
        "lost": tally.accepted - tally.finished - tally.failed - tally.gone_unseen,
        "lost_last_seen": sorted(tally.last_seen.values()),
        "server_errors_5xx": tally.server_errors,
        "transport_errors": tally.transport_errors,
        "other_4xx": tally.other_4xx,
        **(downloads if args.download else {}),
        **latency_summary(tally.latencies_ms),
        **leftovers(args.data_dir, args.redis_url, tally.accepted_ids, args.storage_url),
    }
    for key, value in report.items():
        print(f"{key:>20}: {value}", file=sys.stderr)
    print(json.dumps(report))
    clean = report["lost"] == 0 and report["server_errors_5xx"] == 0
    clean = clean and report.get("files_left", 0) == 0 and report.get("redis_keys_left", 0) == 0
    clean = clean and report.get("objects_left", 0) == 0 and report.get("download_errors", 0) == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
