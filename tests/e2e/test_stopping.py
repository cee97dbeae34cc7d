"""Stopping the whole service (`scripts/run`) every way users and supervisors do: nothing is left
running or registered in Redis, no traceback is printed, and a job in hand is finished."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis

from shared import jobs
from shared.schema import JobStatus
from tests import images
from tests.ports import free_port
from tests.processes import Service, slow_png
from tests.redis_servers import start_redis

pytestmark = pytest.mark.e2e

#: Generous bounds that still catch what users met: workers that took 36-75 s or never went.
IDLE_SECONDS = 10
BUSY_SECONDS = 60


@pytest.fixture
def busy_cpus() -> Iterator[None]:
    """Two busy loops on the machine's two cores while the test runs."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for loop in loops:
        loop.kill()
        loop.wait()


def after_stop(service: Service, external_url: str | None) -> redis.Redis:
    """A client on the Redis the service used; its private one is started again from its files."""
    if external_url:
        return redis.Redis.from_url(external_url)
    port = free_port()
    server = start_redis(port, service.root / "data" / "redis", "--appendonly", "yes")
    service.restarted_redis = server  # type: ignore[attr-defined]
    return redis.Redis(port=port)


def check_stopped_cleanly(service: Service, connection: redis.Redis, how: str) -> None:
    assert connection.smembers("rq:workers") == set()
    output = service.output()
    assert "Traceback" not in output, output
    if how != "each":  # a stop of the script is no process dying on its own
        assert "exited (status" not in output, output
    service.log_records()  # every line is JSON


def run_case(
    tmp_path: Path, external_url: str | None, how: str, signum: str, busy: bool
) -> tuple[float, str | None]:
    service = Service(tmp_path, external_url, IMGPRESS_WORKERS="2", IMGPRESS_JOB_TIMEOUT_SECONDS="60")
    job_id = None
    try:
        service.start()
        if busy:
            with httpx.Client(base_url=service.url, timeout=30) as http:
                posted = http.post("/v1/jobs", content=slow_png(), headers={"content-type": "image/png"})
                assert posted.status_code == 202, posted.text
                job_id = posted.json()["id"]
                deadline = time.monotonic() + 60
                while http.get(f"/v1/jobs/{job_id}").json()["status"] != "started":
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
        service.signal(how, signal.Signals[signum])
        seconds = service.wait_stopped(BUSY_SECONDS if busy else IDLE_SECONDS)
        connection = after_stop(service, external_url)
        try:
            check_stopped_cleanly(service, connection, how)
            status = jobs.load(connection, job_id).status if job_id else None
        finally:
            connection.close()
            restarted = getattr(service, "restarted_redis", None)
            if restarted is not None:
                restarted.terminate()
                restarted.wait()
        case = f"{how} {signum} busy={busy} private={not external_url}"
        print(f"stop {case}: {seconds:.2f} s")
        return seconds, status
    finally:
        service.kill()


WAYS = [
    ("group", "SIGTERM"),
    ("group", "SIGINT"),
    ("script", "SIGTERM"),
    ("script", "SIGINT"),
    ("each", "SIGTERM"),
    ("each", "SIGINT"),
]


@pytest.mark.parametrize(("how", "signum"), WAYS)
def test_idle_service_stops_whole(tmp_path: Path, redis_url: str, how: str, signum: str) -> None:
    run_case(tmp_path, redis_url, how, signum, busy=False)


@pytest.mark.parametrize(("how", "signum"), [("group", "SIGINT"), ("script", "SIGTERM")])
def test_idle_service_with_its_private_redis_stops_whole(tmp_path: Path, how: str, signum: str) -> None:
    run_case(tmp_path, None, how, signum, busy=False)


@pytest.mark.parametrize(
    ("how", "signum"),
    [
        ("group", "SIGINT"),
        ("group", "SIGTERM"),
        ("script", "SIGTERM"),
        ("each", "SIGTERM"),
    ],
)
def test_busy_service_finishes_the_job_in_hand(tmp_path: Path, redis_url: str, how: str, signum: str) -> None:
    _seconds, status = run_case(tmp_path, redis_url, how, signum, busy=True)
    assert status == JobStatus.FINISHED


def test_busy_service_with_its_private_redis_finishes_the_job(tmp_path: Path) -> None:
    _seconds, status = run_case(tmp_path, None, "group", "SIGINT", busy=True)
    assert status == JobStatus.FINISHED


@pytest.mark.heavy
@pytest.mark.parametrize(("how", "busy"), [("group", False), ("each", True)])
def test_stops_whole_on_a_loaded_machine(
    tmp_path: Path, redis_url: str, busy_cpus: None, how: str, busy: bool
) -> None:
    _seconds, status = run_case(tmp_path, redis_url, how, "SIGINT" if how == "group" else "SIGTERM", busy)
    assert status == (JobStatus.FINISHED if busy else None)


def test_every_line_of_a_run_is_json_with_ids(tmp_path: Path, redis_url: str) -> None:
    service = Service(tmp_path, redis_url, IMGPRESS_WORKERS="1")
    try:
        service.start()
        with httpx.Client(base_url=service.url, timeout=30) as http:
            good = http.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}).json()["id"]
            bad = http.post("/v1/jobs", files={"file": ("b.jpg", b"not an image")})
            assert bad.status_code == 415
            assert http.get(f"/v1/jobs/{good}", params={"wait": 20}).json()["status"] == "finished"
        service.signal("group", signal.SIGINT)
        service.wait_stopped(IDLE_SECONDS)
    finally:
        service.kill()
    records = service.log_records()
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    loggers = {str(record["logger"]).split(".")[0] for record in records}
    assert {"imgpress", "uvicorn", "rq"} <= loggers
    job_records = [r for r in records if r.get("job_id") == good]
    assert {r["logger"] for r in job_records} >= {"imgpress.jobs"}
    # RQ says when it takes the job (the id in the message); its end is the imgpress.jobs line.
    taken = [r for r in records if r["logger"] == "rq.worker" and good in str(r["message"])]
    assert [r["message"] for r in taken if "compress" in str(r["message"])], taken
    assert not [r for r in taken if "Job OK" in str(r["message"])]
    requests = [r for r in records if r["logger"] == "imgpress.http" and r.get("request_id")]
    assert len(requests) >= 3


def busy_with_one_waiting(service: Service, waiting: threading.Thread) -> str:
    """Give the service's one worker a slow job, then start `waiting` (an upload with `?wait=`)
    once the job runs, and return when the upload waits in the queue: the slow job's id."""
    with httpx.Client(base_url=service.url, timeout=30) as http:
        posted = http.post("/v1/jobs", content=slow_png(), headers={"content-type": "image/png"})
        job_id: str = posted.json()["id"]
        deadline = time.monotonic() + 60
        while http.get(f"/v1/jobs/{job_id}").json()["status"] != "started":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        waiting.start()  # queued behind the job in hand: the API holds its request
        while 'imgpress_queue_depth{queue="imgpress"} 1.0' not in http.get("/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    return job_id


def upload_and_wait(url: str, answers: list[tuple[float, httpx.Response]] | None = None) -> None:
    """Upload an image and wait for its job, as long as the service lets the request live; note
    when the answer came, and the answer, in `answers`."""
    with contextlib.suppress(httpx.HTTPError):
        answer = httpx.post(
            f"{url}/v1/jobs?wait=30",
            content=images.jpeg(),
            headers={"content-type": "image/jpeg"},
            timeout=40,
        )
        if answers is not None:
            answers.append((time.monotonic(), answer))


def test_a_process_that_dies_is_named_and_the_rest_stop(tmp_path: Path) -> None:
    service = Service(tmp_path, None)
    try:
        service.start()
        os.kill(service.children()["redis"], signal.SIGKILL)
        service.wait_stopped(IDLE_SECONDS)
        warnings = [r["message"] for r in service.log_records() if r["level"] == "warning"]
        assert "the private Redis exited (status 137); stopping the others" in warnings, warnings
    finally:
        service.kill()


def follow_events(url: str, job_id: str, ended: list[tuple[float, list[str]]]) -> None:
    """Read a job's event stream to its end; note when the first event came, then when the
    stream ended, with the events' names."""
    names: list[str] = []
    with httpx.stream("GET", f"{url}/v1/jobs/{job_id}/events", timeout=40) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                names.append(line.partition(":")[2].strip())
                ended.append((time.monotonic(), list(names)))
    ended.append((time.monotonic(), names))


def test_ctrl_c_answers_waiting_uploads_at_once(tmp_path: Path, redis_url: str) -> None:
    """A waiting upload (`?wait=30`) or event stream does not hold the API up at a Ctrl-C: the
    upload is answered 202 with its job as it is, to follow on the next start, and the stream
    ends (an EventSource reconnects), while the worker finishes the job in hand."""
    service = Service(tmp_path, redis_url, IMGPRESS_WORKERS="1")
    answers: list[tuple[float, httpx.Response]] = []
    waiting = threading.Thread(target=upload_and_wait, args=(service.url, answers), daemon=True)
    ended: list[tuple[float, list[str]]] = []
    try:
        service.start()
        job_id = busy_with_one_waiting(service, waiting)
        deadline = time.monotonic() + 60
        following = threading.Thread(target=follow_events, args=(service.url, job_id, ended), daemon=True)
        following.start()
        while not ended:  # its first event came: the stream waits for the next
            assert time.monotonic() < deadline
            time.sleep(0.05)
        signalled = time.monotonic()
        service.signal("group", signal.SIGINT)
        waiting.join(IDLE_SECONDS)
        following.join(IDLE_SECONDS)
        [(answered, answer)] = answers
        assert answered - signalled < 3, answered - signalled
        assert ended[-1][0] - signalled < 3 and ended[-1][1] == ["started"], ended
        assert answer.status_code == 202 and answer.json()["status"] == "queued", answer.text
        assert answer.headers["location"] == f"/v1/jobs/{answer.json()['id']}"
        service.wait_stopped(BUSY_SECONDS)
        assert "Traceback" not in service.output(), service.output()
    finally:
        service.kill()


def warm_stop_logged(service: Service, job_id: str, seconds: float = 30) -> float:
    """When (epoch seconds) the worker running `job_id` logged that it will stop after it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in service.output().splitlines():
            # The service is running: its last line may be half written.
            if job_id in line and "warm shut down requested" in line and line.endswith("}"):
                return datetime.fromisoformat(json.loads(line)["time"]).timestamp()
        time.sleep(0.05)
    raise AssertionError(f"no worker said it would stop after job {job_id}:\n{service.output()}")


def test_a_second_ctrl_c_leaves_no_job_started_for_ever(tmp_path: Path, redis_url: str) -> None:
    """Ctrl-C twice stops the job in hand at once, and the upload waiting for its turn, with no
    traceback; started again, the service fails the job as `worker_lost` (as for a killed
    worker) instead of showing it as started for ever."""
    service = Service(tmp_path, redis_url, IMGPRESS_WORKERS="1", IMGPRESS_SWEEP_INTERVAL_SECONDS="1")
    waiting = threading.Thread(target=upload_and_wait, args=(service.url,), daemon=True)
    try:
        service.start()
        job_id = busy_with_one_waiting(service, waiting)
        service.signal("group", signal.SIGINT)
        # RQ ignores a stop signal that comes within 1 s of the first (the pool's and the
        # terminal's): the second Ctrl-C comes 1.1 s after the worker took the first.
        took_first = warm_stop_logged(service, job_id)
        time.sleep(max(0.0, took_first + 1.1 - time.time()))
        service.signal("group", signal.SIGINT)
        service.wait_stopped(IDLE_SECONDS)
        assert "Traceback" not in service.output(), service.output()
        said = [r["message"] for r in service.log_records() if r["logger"] == "imgpress.run"]
        assert [m for m in said if str(m).startswith("stopping:")] == [
            "stopping: no new uploads; the workers finish the jobs in hand (Ctrl-C again stops them at once)"
        ], said
        service.start()
        with httpx.Client(base_url=service.url, timeout=60) as http:
            job = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        assert job["status"] == "failed" and job["error"]["code"] == "worker_lost", job
    finally:
        service.kill()
