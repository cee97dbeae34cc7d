#!/usr/bin/env python3
"""End-to-end benchmark against a RUNNING imgpress (it starts nothing itself), per effort, against
Pillow's own encoder doing the same work: the tutorial app's `Image.open(f).save(out, "JPEG", quality=q)`.

    .venv/bin/python scripts/bench_e2e.py --url http://127.0.0.1:8000 --redis-url redis://127.0.0.1:6379/0 \
        --count 200 --concurrency 8 [--efforts fast,balanced,max] [--megapixels 12] [--quick]

Sends N real photos (../shared/corpus/photos, or --images DIR, as JPEG q90, optionally
upscaled to --megapixels) at concurrency C with `quality=Q&effort=E`, each upload waiting with
`?wait=` and answered with the output itself (`Accept: image/*`; `--separate-download`: the
job, then GET its result), and verifies each result. The reference runs in the same run:
Pillow's decode + encode of the same images at the same quality number in 2 processes, taking
turns with each effort (--rounds, default 3) so that a host's drift weighs on all. Reports per
effort: images/s and its ratio to Pillow's, CPU per image of the API, worker and Redis process
trees (from /proc, including reaped work-horses) against Pillow's, output bytes against
Pillow's at the same quality number, and latency. `--diagnostic` adds the service over its
own pipeline run raw (no HTTP, no queue). Prints a markdown table, then one JSON line.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import queue
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import latency_summary, listening_pid, usage, worker_pids  # noqa: E402
from rawlimit import Encode, run_raw  # noqa: E402

from shared.options import EFFORTS  # noqa: E402

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
    #: The output's size.
    bytes: int


def _epoch_ms(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp() * 1000


def one(client: httpx.Client, data: bytes, way: Way, options: dict[str, str]) -> Trip:
    started = time.perf_counter()
    sent = time.time() * 1000
    # The fastest way to wait: the upload itself holds until the job ends (?wait=).
    headers = {} if way.separate_download else {"accept": "image/*, application/json;q=0.5"}
    params = {"wait": "30", **options}
    if way.multipart:
        upload = {"file": ("photo.jpg", data, "image/jpeg")}
        response = client.post("/v1/jobs", params=params, files=upload, headers=headers)
    else:
        headers["content-type"] = "image/jpeg"
        response = client.post("/v1/jobs", params=params, content=data, headers=headers)
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
    stages = tuple(later - earlier for earlier, later in itertools.pairwise(moments))
    return Trip(latency, stages, len(response.content))


def run_service(
    clients: list[httpx.Client], images: list[bytes], count: int, way: Way, options: dict[str, str]
) -> tuple[float, list[Trip]]:
    """Send `count` images with one thread per client; the clients (and their connections) are
    made once for the whole run, as a real client keeps its own."""
    idle: queue.SimpleQueue[httpx.Client] = queue.SimpleQueue()
    for client in clients:
        idle.put(client)

    def task(index: int) -> Trip:
        client = idle.get()
        try:
            return one(client, images[index % len(images)], way, options)
        finally:
            idle.put(client)

    started = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        trips = list(pool.map(task, range(count)))
    return time.perf_counter() - started, trips


def split(count: int, rounds: int) -> list[int]:
    """`count` images in `rounds` near-equal parts (none empty)."""
    rounds = max(1, min(rounds, count))
    return [count // rounds + (1 if index < count % rounds else 0) for index in range(rounds)]


@dataclass
class Side:
    """What one side of the comparison (an effort of the service, or Pillow) spent over the run."""

    wall: float = 0.0
    images: int = 0
    #: CPU milliseconds per image, by process tree ("api", "worker", "redis"; "raw" for a raw run).
    cpu_ms: dict[str, float] = field(default_factory=dict)
    system_ms: dict[str, float] = field(default_factory=dict)
    client_cpu: float = 0.0
    trips: list[Trip] = field(default_factory=list)
    encodes: list[Encode] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def add(self, name: str, cpu: float, system: float) -> None:
        self.cpu_ms[name] = self.cpu_ms.get(name, 0.0) + cpu
        self.system_ms[name] = self.system_ms.get(name, 0.0) + system

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall if self.wall else 0.0

    @property
    def total_cpu_ms(self) -> float:
        return sum(self.cpu_ms.values()) / max(1, self.images)


def run_raw_side(side: Side, images: list[bytes], part: int, quality: int, effort: str, pillow: bool) -> None:
    """One round of a raw run (Pillow's, or imgpress's pipeline) added to `side`."""
    seconds, encodes, sizes = run_raw(images, part, quality, effort, pillow)
    side.wall += seconds
    side.images += part
    side.encodes += encodes
    side.sizes += sizes
    side.add("raw", sum(e.cpu for e in encodes) * 1000, sum(e.kernel for e in encodes) * 1000)


def report_for(effort: str, side: Side, pillow: Side, raw: Side | None) -> dict[str, object]:
    """The figures of one effort, against Pillow's (and its own raw pipeline, as a diagnostic)."""
    per = max(1, side.images)
    pillow_bytes = statistics.mean(pillow.sizes)
    report: dict[str, object] = {
        "effort": effort,
        "images": side.images,
        "images_per_s": round(side.images_per_s, 2),
        "pillow_images_per_s": round(pillow.images_per_s, 2),
        "ratio_throughput_vs_pillow": round(side.images_per_s / pillow.images_per_s, 3),
        **latency_summary([trip.latency_ms for trip in side.trips]),
        **{f"cpu_ms_per_image_{name}": round(ms / per, 2) for name, ms in side.cpu_ms.items()},
        **{f"system_ms_per_image_{name}": round(ms / per, 2) for name, ms in side.system_ms.items()},
        "cpu_ms_per_image_client": round(side.client_cpu / per * 1000, 2),
        "cpu_ms_per_image_service": round(side.total_cpu_ms, 2),
        "cpu_ms_per_image_pillow": round(pillow.total_cpu_ms, 2),
        "ratio_cpu_vs_pillow": round(side.total_cpu_ms / pillow.total_cpu_ms, 3),
        "bytes_mean": round(statistics.mean(trip.bytes for trip in side.trips)),
        "pillow_bytes_mean": round(pillow_bytes),
        "ratio_bytes_vs_pillow": round(statistics.mean(trip.bytes for trip in side.trips) / pillow_bytes, 3),
    }
    if side.trips:
        report.update(
            {
                f"stage_ms_p50_{stage}": round(
                    statistics.median(trip.stages_ms[index] for trip in side.trips), 2
                )
                for index, stage in enumerate(STAGES)
            }
        )
    if raw is not None:
        encode_p50 = statistics.median(encode.cpu for encode in raw.encodes) * 1000
        report.update(
            raw_images_per_s=round(raw.images_per_s, 2),
            cpu_ms_per_image_raw=round(raw.total_cpu_ms, 2),
            ratio_throughput_vs_own_pipeline=round(side.images_per_s / raw.images_per_s, 3),
            ratio_cpu_vs_own_pipeline=round(side.total_cpu_ms / raw.total_cpu_ms, 3),
            latency_p50_over_encode_ms=round(float(report["latency_ms_p50"]) - encode_p50, 2),  # type: ignore[arg-type]
        )
    return report


def print_table(reports: list[dict[str, object]], quality: int, concurrency: int, megapixels: float) -> None:
    """The headline figures as a markdown table (stdout)."""
    print(
        f"\n{megapixels} MP photos, quality {quality}, concurrency {concurrency}; Pillow = decode + "
        '`save(out, "JPEG", quality=q)` in 2 processes, same images, alternating.\n'
    )
    print(
        "| effort | images/s | vs Pillow's | CPU ms/image (API + worker + Redis) | vs Pillow's CPU | "
        "bytes vs Pillow (same quality number) | latency p50 / p95 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in reports:
        parts = " + ".join(str(r.get(f"cpu_ms_per_image_{name}", 0)) for name in ("api", "worker", "redis"))
        print(
            f"| {r['effort']} | {r['images_per_s']} | {r['ratio_throughput_vs_pillow']}x | {parts} = "
            f"{r['cpu_ms_per_image_service']} | {r['ratio_cpu_vs_pillow']}x | {r['ratio_bytes_vs_pillow']} | "
            f"{r['latency_ms_p50']} / {r['latency_ms_p95']} ms |"
        )
    pillow = reports[0]
    print(
        f"| Pillow | {pillow['pillow_images_per_s']} | 1x | {pillow['cpu_ms_per_image_pillow']} | 1x | 1 | |"
    )


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
    parser.add_argument("--count", type=int, default=200, help="images per effort")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--quality", type=int, default=75)
    parser.add_argument("--efforts", default=",".join(EFFORTS), help="comma-separated, e.g. fast,balanced")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternate the sides this many times (same totals)"
    )
    parser.add_argument("--quick", action="store_true", help="24 images per effort in 2 rounds")
    parser.add_argument("--diagnostic", action="store_true", help="also run imgpress's own pipeline raw")
    parser.add_argument("--multipart", action="store_true", help="upload multipart instead of raw bodies")
    parser.add_argument(
        "--separate-download",
        action="store_true",
        help="take the job from the upload's answer, then GET its result (two requests per image)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.rounds = 24, 2
    efforts = [effort for effort in args.efforts.split(",") if effort]
    if not efforts or any(effort not in EFFORTS for effort in efforts):
        parser.error(f"--efforts takes values from {', '.join(EFFORTS)}")
    way = Way(args.multipart, args.separate_download)
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("only a service on this machine (loopback)")
    api = listening_pid(urlsplit(args.url).port or 80)
    workers = worker_pids(args.redis_url)
    redis = listening_pid(urlsplit(args.redis_url).port or 6379)
    if api is None or not workers or redis is None:
        parser.error(f"could not find the service's processes (api={api}, workers={workers}, redis={redis})")
    images = load_images(args.images, args.megapixels, 12)
    sizes = [Image.open(io.BytesIO(data)).size for data in images]
    megapixels = round(sum(w * h for w, h in sizes) / len(sizes) / 1e6, 2)
    processes = {"api": [api], "worker": workers, "redis": [redis]}

    sides = {effort: Side() for effort in efforts}
    raws = {effort: Side() for effort in efforts}
    pillow = Side()
    clients = [httpx.Client(base_url=args.url, timeout=60) for _ in range(args.concurrency)]
    for effort in efforts:  # warm up
        run_service(
            clients, images, min(2 * args.concurrency, args.count), way, _options(args.quality, effort)
        )
    # The sides take turns, so a host that speeds up or slows down during the run (shared VMs
    # drift by 10-30 % within minutes) weighs on all alike.
    for part in split(args.count, args.rounds):
        for effort in efforts:
            side = sides[effort]
            before = {name: usage(pids) for name, pids in processes.items()}
            client_before = time.process_time()
            options = _options(args.quality, effort)
            seconds, trips = run_service(clients, images, part, way, options)
            side.client_cpu += time.process_time() - client_before
            after = {name: usage(pids) for name, pids in processes.items()}
            for name in processes:
                cpu = (after[name].cpu_seconds - before[name].cpu_seconds) * 1000
                side.add(name, cpu, (after[name].system_seconds - before[name].system_seconds) * 1000)
            side.wall += seconds
            side.images += part
            side.trips += trips
            run_raw_side(pillow, images, part, args.quality, effort, pillow=True)
            if args.diagnostic:
                run_raw_side(raws[effort], images, part, args.quality, effort, pillow=False)
    reports = [report_for(e, sides[e], pillow, raws[e] if args.diagnostic else None) for e in efforts]
    for report in reports:
        for key, value in report.items():
            print(f"{key:>34}: {value}", file=sys.stderr)
    print_table(reports, args.quality, args.concurrency, megapixels)
    print(json.dumps({"concurrency": args.concurrency, "megapixels": megapixels, "efforts": reports}))
    return 0


def _options(quality: int, effort: str) -> dict[str, str]:
    return {"quality": str(quality), "effort": effort}


if __name__ == "__main__":
    sys.exit(main())
