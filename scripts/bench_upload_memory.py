#!/usr/bin/env python3
"""API memory while it receives one large upload, against a RUNNING imgpress (starts nothing).

    .venv/bin/python scripts/bench_upload_memory.py --url http://127.0.0.1:8000 [--megabytes 45]

Makes a PNG of about --megabytes (noise, so it does not compress), finds the API process by
its listening port, samples its resident memory (VmRSS) every 5 ms while the upload streams
in, raw and multipart, and reports the baseline, the peak and the growth. Ends with one JSON
line.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from measure import listening_pid
from PIL import Image


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def big_png(megabytes: float) -> bytes:
    side = int((megabytes * 1e6 / 3) ** 0.5)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), __import__("os").urandom(side * side * 3)).save(
        buffer, "PNG", compress_level=0
    )
    return buffer.getvalue()


def measure(url: str, pid: int, data: bytes, multipart: bool) -> dict[str, float]:
    baseline = rss_kib(pid)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()

    def chunks() -> object:
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client:
        if multipart:
            response = client.post("/v1/jobs", files={"file": ("big.png", io.BytesIO(data), "image/png")})
        else:
            response = client.post("/v1/jobs", content=chunks(), headers={"content-type": "image/png"})
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        if response.status_code == 202:
            client.delete(f"/v1/jobs/{response.json()['id']}")
    return {
        "status": response.status_code,
        "upload_mib": round(len(data) / 2**20, 1),
        "seconds": round(seconds, 2),
        "rss_baseline_mib": round(baseline / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_growth_mib": round((peak - baseline) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--megabytes", type=float, default=45)
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("only a service on this machine (loopback)")
    pid = listening_pid(parts.port or 80)
    if pid is None:
        parser.error("no process listens on that port")
    data = big_png(args.megabytes)
    report = {
        "raw": measure(args.url, pid, data, multipart=False),
        "multipart": measure(args.url, pid, data, multipart=True),
    }
    for variant, figures in report.items():
        print(variant, figures, file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
