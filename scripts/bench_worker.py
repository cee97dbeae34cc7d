#!/usr/bin/env python3
"""A worker's CPU per job beyond the encode, and the Redis commands it sends (no HTTP, no API).

    .venv/bin/python scripts/bench_worker.py --redis-url redis://127.0.0.1:6391/5 \
        [--count 200] [--worker-class worker.rqworker.Worker]

Queues N real photos (the Kodak photos as JPEG q90, like bench_e2e.py) through the API's own
`shared.jobs.submit`, runs them to the end with one in-process RQ worker in burst mode, and
compares that process's CPU time with the same `pipeline.compress` calls made directly (before
and after, averaged). Also reports Redis's own CPU and the commands it processed, per job, from
INFO. The difference is what the queue costs a worker per job; it is also measured directly as
the worker's CPU outside `pipeline.encode` (timed inside the worker), which is steadier than
the difference of two encode-dominated figures on a shared machine. The database is FLUSHED before
and after: give it one of its own. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# As under scripts/run: every worker process writes its metrics to a shared folder.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="imgpress-bench-metrics-"))

import redis  # noqa: E402
from bench_e2e import DEFAULT_IMAGES, load_images  # noqa: E402
from measure import print_report  # noqa: E402
from PIL import Image  # noqa: E402
from rq.worker import BaseWorker  # noqa: E402

from shared import jobs, names, storage  # noqa: E402
from shared.options import Options  # noqa: E402
from shared.schema import InputInfo, Job, JobStatus, utc_now  # noqa: E402
from shared.settings import Settings  # noqa: E402
from worker import pipeline, tasks  # noqa: E402


def queue_jobs(connection: redis.Redis, settings: Settings, images: list[bytes], count: int) -> None:
    """Store N inputs and queue their jobs exactly as the API does."""
    options = Options.parse({"quality": "80"})
    for index in range(count):
        data = images[index % len(images)]
        job_id = storage.new_job_id()
        path = storage.input_path(settings.data_dir, job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        with Image.open(path) as image:
            width, height = image.size
        info = InputInfo("photo.jpg", "image/jpeg", len(data), width, height)
        jobs.submit(connection, settings, Job(job_id, JobStatus.QUEUED, utc_now(), info, options))


def raw_cpu(settings: Settings, images: list[bytes], count: int) -> float:
    """CPU seconds of the same pipeline calls made directly, one after another."""
    folder = Path(tempfile.mkdtemp(dir=settings.data_dir))
    source = folder / "input"
    options = Options.parse({"quality": "80"})
    limits = pipeline.Limits(max_pixels=settings.max_pixels, max_frames=settings.max_frames)
    spent = 0.0
    for index in range(count):
        source.write_bytes(images[index % len(images)])
        started = time.process_time()
        pipeline.compress(source, folder / "output", folder / "temp", options, limits)
        spent += time.process_time() - started
    shutil.rmtree(folder)
    return spent


class TimedPipeline:
    """Stands in for pipeline.encode (what a job calls) inside the worker and adds up the CPU
    time it takes."""

    def __init__(self) -> None:
        self.real = pipeline.encode
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return self.real(*args, **kwargs)
        finally:
            self.seconds += time.thread_time() - started


def redis_counters(connection: redis.Redis) -> tuple[float, int]:
    """Redis's own CPU seconds and the commands it has processed so far."""
    cpu = connection.info("cpu")
    stats = connection.info("stats")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"], int(stats["total_commands_processed"])


def run_worker(worker_class: type[BaseWorker], connection: redis.Redis) -> None:
    """Run every queued job to its end with one in-process worker."""
    worker_class(list(names.WORKER_QUEUES), connection=connection).work(burst=True, logging_level="WARNING")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", required=True, help="a database of its own: it is flushed")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument(
        "--worker-class", default="rq.worker.SimpleWorker", help="dotted name, as given to rq worker-pool"
    )
    args = parser.parse_args(argv)
    module, _, name = args.worker_class.rpartition(".")
    worker_class = getattr(importlib.import_module(module), name)

    data_dir = Path(tempfile.mkdtemp(prefix="imgpress-bench-worker-"))
    settings = replace(Settings.from_env({}), redis_url=args.redis_url, data_dir=data_dir)
    os.environ.update(settings.to_env())
    tasks.settings.cache_clear()
    storage.ensure_dirs(data_dir)
    connection = redis.Redis.from_url(args.redis_url)
    connection.flushdb()
    images = load_images(args.images, None, 12)
    try:
        raw_cpu(settings, images, 12)  # warm the encoders
        raw_before = raw_cpu(settings, images, args.count)
        queue_jobs(connection, settings, images, 12)
        run_worker(worker_class, connection)
        queue_jobs(connection, settings, images, args.count)
        redis_cpu, commands = redis_counters(connection)
        timed = TimedPipeline()
        pipeline.encode = timed  # type: ignore[assignment]
        started = time.process_time()
        run_worker(worker_class, connection)
        worker_cpu = time.process_time() - started
        pipeline.encode = timed.real  # type: ignore[assignment]
        redis_after, commands_after = redis_counters(connection)
        raw_after = raw_cpu(settings, images, args.count)
        finished = sum(
            jobs.parse(connection.get(key) or "{}").status is JobStatus.FINISHED
            for key in connection.scan_iter(names.job_key("*"))
        )
    finally:
        connection.flushdb()
        shutil.rmtree(data_dir, ignore_errors=True)
    raw = (raw_before + raw_after) / 2
    per_job = 1000 / args.count
    report = {
        "worker_class": args.worker_class,
        "jobs": args.count,
        "finished": finished,
        "worker_cpu_ms_per_job": round(worker_cpu * per_job, 2),
        "raw_cpu_ms_per_job": round(raw * per_job, 2),
        "raw_cpu_ms_before_after": [round(raw_before * per_job, 2), round(raw_after * per_job, 2)],
        "overhead_cpu_ms_per_job": round((worker_cpu - raw) * per_job, 2),
        "outside_pipeline_cpu_ms_per_job": round((worker_cpu - timed.seconds) * per_job, 2),
        "redis_cpu_ms_per_job": round((redis_after - redis_cpu) * per_job, 3),
        "redis_commands_per_job": round((commands_after - commands) / args.count, 1),
    }
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
