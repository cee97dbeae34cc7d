#!/usr/bin/env python3
"""Instructions a worker executes per job beyond the encode: a figure a noisy machine cannot move.

    .venv/bin/python scripts/bench_instructions.py --redis-url redis://127.0.0.1:6379/13 \
        [--jobs 5 25] [--worker-class worker.rqworker.ImgpressWorker]

CPU time on a shared 2-core VM moves by 10-20 % from one minute to the next, more than the
queue's whole cost per small image. Valgrind's callgrind counts the instructions a process
executes instead, the same each run. This runs, under callgrind, (1) one burst worker over A and
then B queued photos (the Kodak photos as JPEG q90, queued as the API does, by
scripts/bench_worker.py), and (2) the same `pipeline.compress` calls made directly, A and then B
times; the difference of B and A, divided by B - A, is the cost per job without the start-up.
Worker minus raw is what the queue, RQ and imgpress's own bookkeeping cost per job. Counts only
user-space instructions (not the kernel's, nor Redis's), and not how fast they run: cache misses,
for one, are not in it. Needs valgrind; takes a few minutes. The database is FLUSHED.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from bench_e2e import DEFAULT_IMAGES, load_images  # noqa: E402
from bench_worker import queue_jobs, raw_cpu  # noqa: E402
from measure import print_report  # noqa: E402

from shared import names, storage  # noqa: E402
from shared.settings import Settings  # noqa: E402


def settings_for(redis_url: str, data_dir: Path) -> Settings:
    return replace(Settings.from_env({}), redis_url=redis_url, data_dir=data_dir)


def run_inside(args: argparse.Namespace) -> None:
    """The measured part, in the process callgrind runs: a burst worker, or the raw encodes."""
    import importlib
    import logging

    from worker import tasks

    settings = settings_for(args.redis_url, args.data_dir)
    os.environ.update(settings.to_env())
    tasks.settings.cache_clear()
    logging.disable(logging.CRITICAL)  # the same log line on both sides is not what is compared
    if args.inside == "raw":
        raw_cpu(settings, load_images(args.images, None, 12), args.count)
        return
    module, _, name = args.worker_class.rpartition(".")
    worker_class = getattr(importlib.import_module(module), name)
    connection = redis.Redis.from_url(args.redis_url)
    worker_class(list(names.WORKER_QUEUES), connection=connection).work(burst=True, logging_level="WARNING")


def instructions(args: argparse.Namespace, inside: str, count: int) -> int:
    """Total instructions of one callgrind run of `run_inside`."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--redis-url", args.redis_url, "--images", str(args.images),
            "--worker-class", args.worker_class, "--data-dir", str(args.data_dir),
            "--inside", inside, "--count", str(count),
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no total")


def per_job(args: argparse.Namespace, inside: str) -> float:
    """Instructions per job (or per raw encode), start-up cancelled out."""
    connection = redis.Redis.from_url(args.redis_url)
    settings = settings_for(args.redis_url, args.data_dir)
    images = load_images(args.images, None, 12)
    totals = []
    for count in args.jobs:
        if inside == "worker":
            connection.flushdb()
            queue_jobs(connection, settings, images, count)
        totals.append(instructions(args, inside, count))
    connection.flushdb()
    return (totals[1] - totals[0]) / (args.jobs[1] - args.jobs[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", required=True, help="a database of its own: it is flushed")
    parser.add_argument("--jobs", type=int, nargs=2, default=[5, 25], metavar=("A", "B"))
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--worker-class", default="worker.rqworker.ImgpressWorker")
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--inside", choices=["worker", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        run_inside(args)
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions: needs valgrind (apt-get install valgrind)")
    args.data_dir = Path(tempfile.mkdtemp(prefix="imgpress-bench-instructions-"))
    storage.ensure_dirs(args.data_dir)
    try:
        worker = per_job(args, "worker")
        raw = per_job(args, "raw")
    finally:
        shutil.rmtree(args.data_dir, ignore_errors=True)
    print_report(
        {
            "worker_class": args.worker_class,
            "jobs": args.jobs,
            "worker_instructions_per_job_M": round(worker / 1e6, 2),
            "raw_instructions_per_encode_M": round(raw / 1e6, 2),
            "overhead_instructions_per_job_M": round((worker - raw) / 1e6, 2),
            "overhead_ratio": round(worker / raw, 4),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
