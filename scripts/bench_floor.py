#!/usr/bin/env python3
"""The floor of the design (not a test): what one image costs the fixed parts of any Starlette +
RQ service, against Pillow's own decode and encode of it, taking turns in one run.

    .venv/bin/python scripts/bench_floor.py --redis-url redis://127.0.0.1:6391/15 [--count 2000]

Per image: an empty Starlette request under uvicorn (the upload's bytes in, 40 KB out, 8
clients); an RQ job that does nothing (its enqueue, a SimpleWorker's handling of it, and the
Redis CPU it takes); and Pillow's decode and JPEG encode of the same photos (q90 in, q75 out).
The database is flushed. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import redis
from bench_e2e import DEFAULT_IMAGES, load_images
from measure import print_report, usage
from PIL import Image
from rq import Queue

#: The minimal app the HTTP part serves: it reads the body and answers 40 KB.
APP = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

ANSWER = bytes(40_000)

async def upload(request):
    await request.body()
    return Response(ANSWER, media_type="image/jpeg")

app = Starlette(routes=[Route("/v1/jobs", upload, methods=["POST"])])
"""
#: A burst SimpleWorker on the queue; it prints its own CPU seconds.
WORKER = """
import sys, time
import redis
from rq import Queue
from rq.worker import SimpleWorker
connection = redis.Redis.from_url(sys.argv[1])
started = time.process_time()
worker = SimpleWorker([Queue("floor", connection=connection)], connection=connection)
worker.work(burst=True, logging_level="ERROR")
print(time.process_time() - started)
"""
QUEUE = "floor"
CLIENTS = 8


def http_ms(port: int, bodies: list[bytes], count: int) -> float:
    """CPU ms of the minimal app's process per request, 8 clients at once."""
    serve = "import sys, uvicorn; exec(sys.argv[1]); uvicorn.run(app, port=int(sys.argv[2]), log_level=40)"
    server = subprocess.Popen([sys.executable, "-c", serve, APP, str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("the minimal app did not start") from None
                time.sleep(0.1)

        def send(share: int) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for index in range(share):
                    body = bodies[index % len(bodies)]
                    response = client.post("/v1/jobs", content=body, headers={"content-type": "image/jpeg"})
                    assert response.status_code == 200

        before = usage([server.pid]).cpu_seconds
        threads = [threading.Thread(target=send, args=(count // CLIENTS,)) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return (usage([server.pid]).cpu_seconds - before) / (count // CLIENTS * CLIENTS) * 1000
    finally:
        server.terminate()
        server.wait()


def rq_ms(redis_url: str, count: int) -> tuple[float, float, float]:
    """CPU ms per no-op job: its enqueue, a SimpleWorker's handling of it, Redis's part."""
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue(QUEUE, connection=connection)
    started = time.process_time()
    for _ in range(count):
        queue.enqueue("os.getpid", result_ttl=60)
    enqueue = (time.process_time() - started) / count * 1000
    server_pid = int(connection.info("server")["process_id"])
    before = usage([server_pid]).cpu_seconds
    command = [sys.executable, "-c", WORKER, redis_url]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    worker = float(done.stdout.split()[-1]) / count * 1000
    redis_cpu = (usage([server_pid]).cpu_seconds - before) / count * 1000
    connection.flushdb()
    return enqueue, worker, redis_cpu


def pillow_ms(bodies: list[bytes], count: int) -> float:
    """CPU ms of Pillow's decode and q75 encode per image (the tutorial app's work)."""
    started = time.process_time()
    for index in range(count):
        with Image.open(io.BytesIO(bodies[index % len(bodies)])) as image:
            image.save(io.BytesIO(), "JPEG", quality=75)
    return (time.process_time() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", required=True, help="a database of its own: it is flushed")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8197)
    args = parser.parse_args()
    bodies = load_images(args.images, None, 12)
    figures: dict[str, list[float]] = {"http": [], "enqueue": [], "job": [], "redis": [], "pillow": []}
    for _ in range(args.rounds):
        figures["http"].append(http_ms(args.port, bodies, args.count))
        enqueue, job, redis_cpu = rq_ms(args.redis_url, args.count)
        figures["enqueue"].append(enqueue)
        figures["job"].append(job)
        figures["redis"].append(redis_cpu)
        figures["pillow"].append(pillow_ms(bodies, args.count))
    mean = {name: sum(values) / len(values) for name, values in figures.items()}
    floor = mean["http"] + mean["enqueue"] + mean["job"] + mean["redis"]
    report: dict[str, object] = {
        "images": args.count,
        "rounds": args.rounds,
        "cpu_ms_starlette_request": round(mean["http"], 3),
        "cpu_ms_rq_enqueue": round(mean["enqueue"], 3),
        "cpu_ms_rq_noop_job_worker": round(mean["job"], 3),
        "cpu_ms_rq_noop_job_redis": round(mean["redis"], 3),
        "cpu_ms_floor": round(floor, 3),
        "cpu_ms_pillow": round(mean["pillow"], 3),
        "ratio_floor_to_pillow": round(floor / mean["pillow"], 3),
    }
    print_report(report)


if __name__ == "__main__":
    main()
