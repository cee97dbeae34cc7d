#!/usr/bin/env python3
"""Storage backends compared: the same photos through RUNNING services (it starts nothing) that
differ only in where job files live, taking turns in one run.

    .venv/bin/python scripts/bench_storage.py \
        --service local http://127.0.0.1:8000 redis://127.0.0.1:6379/1 \
        --service s3 http://127.0.0.1:8001 redis://127.0.0.1:6379/2 [--s3-server-port 9000 ...] \
        --count 240 --concurrency 8 --rounds 4

Each service is found by its port (the API) and by the IMGPRESS_REDIS_URL in its processes'
environment (`python -m worker` pools). Each round sends count/rounds images to every service
in turn (scripts/bench_e2e.py's upload with `?wait=` and `Accept: image/*`, verified), and
the CPU of the API, worker and Redis process trees is read from /proc around it; the S3
servers' CPU (given their ports; one per S3 service, idle in the others' turns) is reported
apart, since a real one runs elsewhere. Reports
images/s and CPU ms per image for each service and each one's ratio to the first. Ends with
one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from bench_e2e import DEFAULT_IMAGES, Way, load_images, run_service, split
from measure import listening_pid, print_report, usage


def worker_roots(redis_url: str) -> list[int]:
    """`python -m worker` processes whose environment names this Redis URL (roots only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if (
            b"-m" in command
            and b"worker" in command
            and f"IMGPRESS_REDIS_URL={redis_url}".encode() in environment
        ):
            found.append(int(entry.name))
    parents = {pid: int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) for pid in found}
    return [pid for pid in found if parents[pid] not in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--service", nargs=3, action="append", metavar=("NAME", "URL", "REDIS_URL"), required=True
    )
    parser.add_argument(
        "--s3-server-port",
        type=int,
        action="append",
        default=[],
        help="a local S3 server's port, to report its CPU apart (repeat for several)",
    )
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--count", type=int, default=240, help="images per service")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args(argv)
    if any(urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1") for _, url, _ in args.service):
        parser.error("only services on this machine (loopback)")
    processes: dict[str, dict[str, list[int]]] = {}
    for name, url, redis_url in args.service:
        api = listening_pid(urlsplit(url).port or 80)
        redis = listening_pid(urlsplit(redis_url).port or 6379)
        workers = worker_roots(redis_url)
        if api is None or redis is None or not workers:
            parser.error(
                f"{name}: could not find its processes (api={api}, workers={workers}, redis={redis})"
            )
        processes[name] = {"api": [api], "worker": workers, "redis": [redis]}
    s3_servers = [listening_pid(port) for port in args.s3_server_port]
    if None in s3_servers:
        parser.error(f"no S3 server listens on one of the ports {args.s3_server_port}")
    s3_pids = [pid for pid in s3_servers if pid is not None]
    images = load_images(args.images, None, 12)
    way = Way()
    options = {"quality": str(args.quality)}
    clients = {
        name: [httpx.Client(base_url=url, timeout=60) for _ in range(args.concurrency)]
        for name, url, _ in args.service
    }
    for name in clients:
        run_service(clients[name], images, 16, way, options)  # warm up
    cpu = {name: dict.fromkeys(["api", "worker", "redis", "s3_server"], 0.0) for name in processes}
    wall = dict.fromkeys(processes, 0.0)
    # The services take turns, so a host that drifts during the run weighs on each alike.
    for part in split(args.count, args.rounds):
        for name, _, _ in args.service:
            before = {role: usage(pids).cpu_seconds for role, pids in processes[name].items()}
            server_before = usage(s3_pids).cpu_seconds if s3_pids else 0.0
            started = time.perf_counter()
            run_service(clients[name], images, part, way, options)
            wall[name] += time.perf_counter() - started
            for role, pids in processes[name].items():
                cpu[name][role] += (usage(pids).cpu_seconds - before[role]) / args.count * 1000
            if s3_pids:
                cpu[name]["s3_server"] += (usage(s3_pids).cpu_seconds - server_before) / args.count * 1000
    first = args.service[0][0]
    report: dict[str, object] = {"images": args.count, "concurrency": args.concurrency, "rounds": args.rounds}
    for name in processes:
        service_ms = cpu[name]["api"] + cpu[name]["worker"] + cpu[name]["redis"]
        report[f"{name}_images_per_s"] = round(args.count / wall[name], 2)
        for role in ("api", "worker", "redis", "s3_server"):
            report[f"{name}_cpu_ms_per_image_{role}"] = round(cpu[name][role], 2)
        report[f"{name}_cpu_ms_per_image_service"] = round(service_ms, 2)
    first_ms = sum(cpu[first][role] for role in ("api", "worker", "redis"))
    for name in processes:
        if name != first:
            service_ms = sum(cpu[name][role] for role in ("api", "worker", "redis"))
            report[f"ratio_cpu_{name}_to_{first}"] = round(service_ms / first_ms, 3)
            report[f"ratio_images_per_s_{name}_to_{first}"] = round(wall[first] / wall[name], 3)
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
