#!/usr/bin/env python3
"""End-to-end benchmark against a RUNNING imgpress (it starts nothing itself), then the raw limit.

    .venv/bin/python scripts/bench_e2e.py --url http://127.0.0.1:8000 --redis-url redis://127.0.0.1:6379/0 \
        --count 200 --concurrency 8 [--megapixels 12] [--multipart]

Sends N real photos (../shared/corpus/photos, or --images DIR, as JPEG q90, optionally
upscaled to --megapixels) at concurrency C, each upload waiting with `?wait=` and answered
with the output itself (`Accept: image/*`; `--separate-download`: the job, then GET its
result), and verifies each result. Reports images/s, latency p50/p95/p99, CPU per
image of the API, worker and Redis process trees (from /proc, including reaped work-horses)
and their peak RSS, with the kernel's share of the CPU. The raw limit runs in the same run:
the same images through the same pipeline function with the same settings in 2 processes, no
HTTP, no queue, taking turns with the service (--rounds, default 3) so that a host's drift
weighs on both. Prints the ratios and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import latency_summary, listening_pid, print_report  # noqa: E402

from shared.options import Options  # noqa: E402
from worker import pipeline  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
DEFAULT_IMAGES = ROOT.parent / "shared" / "corpus" / "photos"


# ---------------------------------------------------------------- the images


def load_images(folder: Path, megapixels: float | None, limit: int) -> list[bytes]:
    """The photos as JPEG q90 bytes, optionally scaled to about `megapixels`."""
    found = []
    for path in sorted(folder.iterdir())[:limit]:
        with Image.open(path) as image:
            picture = image.convert("RGB")
        if megapixels:
            scale = (megapixels * 1e6 / (picture.width * picture.height)) ** 0.5
            picture = picture.resize(
                (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS
            )
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=90)
        found.append(buffer.getvalue())
    if not found:
        raise SystemExit(f"no images in {folder}")
    return found


# ---------------------------------------------------------------- /proc accounting


@dataclass
class Usage:
    cpu_seconds: float
    #: The part of cpu_seconds spent in the kernel (system calls, page faults).
    system_seconds: float
    peak_rss_mib: float


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and every live process below it."""
    found, stack = [pid], [pid]
    while stack:
        for child in _children(stack.pop()):
            found.append(child)
            stack.append(child)
    return found


def usage(pids: list[int]) -> Usage:
    """CPU (own + reaped children) and summed peak RSS of these process trees."""
    cpu = system = 0.0
    rss_kib = 0
    for root in pids:
        for pid in tree(root):
            try:
                fields = _stat(pid)
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            # utime, stime (own) and cutime, cstime (reaped children, e.g. RQ's work-horses):
            # fields 14-17 of /proc/pid/stat. Live descendants count their own time only.
            user, kernel = int(fields[11]), int(fields[12])
            if pid == root:
                user, kernel = user + int(fields[13]), kernel + int(fields[14])
            cpu += (user + kernel) / TICKS
            system += kernel / TICKS
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    rss_kib += int(line.split()[1])
    return Usage(cpu, system, rss_kib / 1024)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def worker_pids(redis_url: str) -> list[int]:
    """Top-level `rq worker` processes using this Redis."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            line = _cmdline(int(entry.name))
            if ("rq worker" in line or "rqworker" in line or "rq worker-pool" in line) and redis_url in line:
                found.append(int(entry.name))
    # Keep roots only: the pool's or worker's own children are counted through their parent.
    return [pid for pid in found if int(_stat(pid)[1]) not in found]


# ---------------------------------------------------------------- the service run


@dataclass(frozen=True)
class Way:
    """How the service run sends each image and gets its output back."""

    multipart: bool = False
    #: POST ?wait= answers with the job, then GET /result (two requests); by default the
    #: upload accepts `image/*` and is answered with the output itself (one request).
    separate_download: bool = False

    @property
    def name(self) -> str:
        return ("multipart" if self.multipart else "raw") + ("+download" if self.separate_download else "")


#: Where one image's time goes, from the client's clock and the job's own timestamps (same
#: machine, so one clock; the job's are in milliseconds): sent -> record created (the upload),
#: -> started (the queue), -> finished (the worker's run), -> the answer read (the way back).
STAGES = ("upload", "queue", "run", "answer")


@dataclass(frozen=True)
class Trip:
    latency_ms: float
    #: Milliseconds spent in each of STAGES.
    stages_ms: tuple[float, ...]


def _epoch_ms(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp() * 1000


def one(client: httpx.Client, data: bytes, way: Way) -> Trip:
    started = time.perf_counter()
    sent = time.time() * 1000
    # The fastest way to wait: the upload itself holds until the job ends (?wait=).
    headers = {} if way.separate_download else {"accept": "image/*, application/json;q=0.5"}
    if way.multipart:
        upload = {"file": ("photo.jpg", data, "image/jpeg")}
        response = client.post("/v1/jobs", params={"wait": 30}, files=upload, headers=headers)
    else:
        headers["content-type"] = "image/jpeg"
        response = client.post("/v1/jobs", params={"wait": 30}, content=data, headers=headers)
    if way.separate_download and response.is_success:
        job = response.json()
        if job["status"] != "finished":
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
        response = client.get(f"/v1/jobs/{job['id']}/result")
    # The output is in hand (httpx has read the whole body): the checks below are the bench's.
    latency = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    if not way.separate_download:
        if not response.headers["content-type"].startswith("image/"):
            job = response.json()
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
        job = json.loads(response.headers["imgpress-job"])
    if len(response.content) != job["output"]["bytes"]:
        raise RuntimeError("download does not match the job's output size")
    with Image.open(io.BytesIO(response.content)) as image:
        if image.size != (job["output"]["width"], job["output"]["height"]):
            raise RuntimeError("downloaded image has the wrong size")
    moments = [sent, *(_epoch_ms(job[key]) for key in ("created_at", "started_at", "finished_at"))]
    moments.append(sent + latency)
    return Trip(latency, tuple(later - earlier for earlier, later in itertools.pairwise(moments)))


def run_service(
    url: str, images: list[bytes], count: int, concurrency: int, way: Way
) -> tuple[float, list[Trip]]:
    local = threading.local()

    def task(index: int) -> Trip:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=60)
        return one(local.client, images[index % len(images)], way)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        trips = list(pool.map(task, range(count)))
    return time.perf_counter() - started, trips


# ---------------------------------------------------------------- the raw limit


@dataclass(frozen=True)
class Encode:
    """One raw encode: its CPU seconds, the kernel's part of them, and its wall-clock seconds."""

    cpu: float
    kernel: float
    wall: float


def _raw_one(args: tuple[bytes, int]) -> Encode:
    """One encode, timed."""
    data, quality = args
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "input"
        source.write_bytes(data)
        clock, started = time.perf_counter(), time.process_time()
        kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        pipeline.compress(
            source,
            Path(folder) / "output",
            Path(folder) / "temp",
            Options.parse({"quality": str(quality)}),
            pipeline.Limits(max_pixels=200_000_000, max_frames=1000),
        )
        return Encode(
            time.process_time() - started,
            resource.getrusage(resource.RUSAGE_SELF).ru_stime - kernel,
            time.perf_counter() - clock,
        )


def run_raw(images: list[bytes], count: int, quality: int) -> tuple[float, list[Encode]]:
    """Wall seconds for `count` encodes in 2 processes, and each encode."""
    work = [(images[i % len(images)], quality) for i in range(count)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_raw_one, work[:2])  # warm both processes
        started = time.perf_counter()
        cpu = pool.map(_raw_one, work, chunksize=1)
        return time.perf_counter() - started, cpu


def split(count: int, rounds: int) -> list[int]:
    """`count` images in `rounds` near-equal parts (none empty)."""
    rounds = max(1, min(rounds, count))
    return [count // rounds + (1 if index < count % rounds else 0) for index in range(rounds)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--redis-url", required=True, help="the service's IMGPRESS_REDIS_URL (finds its workers)"
    )
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--megapixels", type=float, help="scale every image to about this size")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--quality", type=int, default=80)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternate service and raw limit this many times (same totals)"
    )
    parser.add_argument("--multipart", action="store_true", help="upload multipart instead of raw bodies")
    parser.add_argument(
        "--separate-download",
        action="store_true",
        help="take the job from the upload's answer, then GET its result (two requests per image)",
    )
    args = parser.parse_args(argv)
    way = Way(args.multipart, args.separate_download)
    host = urlsplit(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("only a service on this machine (loopback)")
    api = listening_pid(urlsplit(args.url).port or 80)
    workers = worker_pids(args.redis_url)
    redis = listening_pid(urlsplit(args.redis_url).port or 6379)
    if api is None or not workers or redis is None:
        parser.error(f"could not find the service's processes (api={api}, workers={workers}, redis={redis})")
    images = load_images(args.images, args.megapixels, 12)
    pixels = sum(Image.open(io.BytesIO(i)).size[0] * Image.open(io.BytesIO(i)).size[1] for i in images) / len(
        images
    )

    run_service(args.url, images, min(8, args.count), args.concurrency, way)  # warm up
    processes = {"api": [api], "worker": workers, "redis": [redis]}
    cpu = dict.fromkeys(processes, 0.0)
    system = dict.fromkeys(processes, 0.0)
    wall = raw_wall = client_cpu = 0.0
    trips: list[Trip] = []
    raw_encodes: list[Encode] = []
    # Service and raw limit take turns, so a host that speeds up or slows down during the run
    # (shared VMs drift by 10-30 % within minutes) weighs on both sides alike.
    for part in split(args.count, args.rounds):
        before = {name: usage(pids) for name, pids in processes.items()}
        client_before = time.process_time()
        seconds, times = run_service(args.url, images, part, args.concurrency, way)
        client_cpu += time.process_time() - client_before
        after = {name: usage(pids) for name, pids in processes.items()}
        for name in processes:
            cpu[name] += (after[name].cpu_seconds - before[name].cpu_seconds) / args.count * 1000
            system[name] += (after[name].system_seconds - before[name].system_seconds) / args.count * 1000
        wall += seconds
        trips += times
        seconds, encodes = run_raw(images, part, args.quality)
        raw_wall += seconds
        raw_encodes += encodes

    raw_cpu_ms = sum(encode.cpu for encode in raw_encodes) / args.count * 1000
    raw_system_ms = sum(encode.kernel for encode in raw_encodes) / args.count * 1000
    encode_p50_ms = statistics.median(encode.cpu for encode in raw_encodes) * 1000
    # A latency is wall-clock time: the like-for-like reference is the encode's wall-clock time
    # (its CPU time leaves out any moment it waits or is not running).
    encode_wall_p50_ms = statistics.median(encode.wall for encode in raw_encodes) * 1000
    latency = latency_summary([trip.latency_ms for trip in trips])
    stages = {
        f"stage_ms_p50_{stage}": round(statistics.median(trip.stages_ms[index] for trip in trips), 2)
        for index, stage in enumerate(STAGES)
    }
    service_cpu_ms = sum(cpu.values())
    report = {
        "variant": way.name,
        "images": args.count,
        "rounds": len(split(args.count, args.rounds)),
        "concurrency": args.concurrency,
        "megapixels": round(pixels / 1e6, 2),
        "images_per_s": round(args.count / wall, 2),
        "raw_images_per_s": round(args.count / raw_wall, 2),
        **latency,
        "encode_ms_p50": round(encode_p50_ms, 2),
        "latency_p50_over_encode_ms": round(latency["latency_ms_p50"] - encode_p50_ms, 2),
        "encode_wall_ms_p50": round(encode_wall_p50_ms, 2),
        "latency_p50_over_encode_wall_ms": round(latency["latency_ms_p50"] - encode_wall_p50_ms, 2),
        **stages,
        "cpu_ms_per_image_api": round(cpu["api"], 2),
        "cpu_ms_per_image_worker": round(cpu["worker"], 2),
        "cpu_ms_per_image_redis": round(cpu["redis"], 2),
        "cpu_ms_per_image_client": round(client_cpu / args.count * 1000, 2),
        "cpu_ms_per_image_raw": round(raw_cpu_ms, 2),
        # The kernel's share (system calls, page faults), which instruction counts do not see.
        "system_ms_per_image_api": round(system["api"], 2),
        "system_ms_per_image_worker": round(system["worker"], 2),
        "system_ms_per_image_raw": round(raw_system_ms, 2),
        "peak_rss_mib_api": round(usage([api]).peak_rss_mib, 1),
        "peak_rss_mib_worker": round(usage(workers).peak_rss_mib, 1),
        "ratio_throughput": round((args.count / wall) / (args.count / raw_wall), 3),
        "ratio_cpu": round(service_cpu_ms / raw_cpu_ms, 3),
    }
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
