"""Faults: killed workers, a Redis that stops and comes back (a Valkey of their own, fsync on every
write), a full disk, a scheduler that was down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image
from rq.job import Job
from starlette.testclient import TestClient

from api.app import create_app
from shared import names, storage
from shared.settings import Settings
from tests import images
from tests.ports import free_port
from tests.processes import alive, descendants, slow_png
from tests.redis_servers import start_redis
from tests.stack import Stack, eventually

pytestmark = pytest.mark.e2e

AOF = ("--appendonly", "yes", "--appendfsync", "always")


class PrivateRedis:
    """A Redis of the test's own, which it may kill and start again on the same port and files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = start_redis(self.port, self.directory, *AOF)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.kill()


def make_stack(tmp_path: Path, redis_url: str, **changes: object) -> Stack:
    settings = replace(
        Settings.from_env({}),
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        port=free_port(),
        **{
            "retention_seconds": 3,
            "sweep_interval_seconds": 1,
            "max_upload_bytes": 64 * 1024 * 1024,
            **changes,
        },  # type: ignore[arg-type]
    )
    return Stack(settings, tmp_path)


@contextmanager
def running(tmp_path: Path, redis_url: str, **changes: object) -> Iterator[tuple[Stack, httpx.Client]]:
    """A started stack (`make_stack`) and a client of its API, both stopped when the block ends."""
    stack = make_stack(tmp_path, redis_url, **changes).start()
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            yield stack, http
    finally:
        stack.stop()


def status_of(http: httpx.Client, job_id: str) -> str:
    return str(http.get(f"/v1/jobs/{job_id}").json()["status"])


def upload(http: httpx.Client, data: bytes, content_type: str = "image/jpeg") -> str:
    response = http.post("/v1/jobs", content=data, headers={"content-type": content_type})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def job_ends(stack: Stack, job_id: str) -> list[tuple[object, object]]:
    """The outcome and code of each imgpress.jobs line about the job in the stack's logs."""
    ends = []
    for log in stack.log_dir.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line a dying process left half written
            if record.get("logger") == "imgpress.jobs" and record.get("job_id") == job_id:
                ends.append((record.get("outcome"), record.get("code")))
    return ends


def test_a_job_past_its_timeout_fails_logged_and_the_queue_goes_on(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    with running(tmp_path, private_redis.url, job_timeout_seconds=1) as (stack, http):
        slow = upload(http, slow_png(), "image/png")
        behind = upload(http, images.jpeg())
        assert eventually(lambda: status_of(http, slow) == "failed", 60)
        error = http.get(f"/v1/jobs/{slow}").json()["error"]
        assert error == {"code": "timeout", "message": "The image took longer than 1 seconds to process."}
        assert eventually(lambda: ("failed", "timeout") in job_ends(stack, slow), 10)
        assert eventually(lambda: status_of(http, behind) == "finished", 30)


@pytest.mark.parametrize("victim", ["work-horse", "worker"])
def test_killed_worker_fails_the_job_and_the_queue_goes_on(
    tmp_path: Path, private_redis: PrivateRedis, victim: str
) -> None:
    with running(tmp_path, private_redis.url, retention_seconds=120) as (stack, http):
        doomed = upload(http, slow_png(), "image/png")
        assert eventually(lambda: status_of(http, doomed) == "started", 60)
        behind = upload(http, images.jpeg())
        worker = stack.processes["worker"]
        horses = descendants(worker.pid)
        assert horses, "the forking worker runs each job in a child"
        for pid in horses:
            os.kill(pid, signal.SIGKILL)
        if victim == "worker":
            # The whole worker goes (as when its container or machine dies); a new one starts.
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            stack.start_worker("worker-2")
        # The sweep notices the lease is no longer renewed and fails the job: no retry, as
        # a file that killed one worker would likely kill the next.
        assert eventually(lambda: status_of(http, doomed) == "failed", 60)
        job = http.get(f"/v1/jobs/{doomed}").json()
        assert job["error"]["code"] == "worker_lost"
        # Its end is logged like every job's, by the sweep that found it.
        assert eventually(lambda: ("failed", "worker_lost") in job_ends(stack, doomed), 10)
        assert http.get(f"/v1/jobs/{doomed}/result").status_code == 422
        assert eventually(lambda: status_of(http, behind) == "finished", 30)
        folder = storage.job_dir(stack.settings.data_dir, doomed)
        assert not folder.exists() or not any(folder.iterdir())


def test_redis_outage_is_503_then_heals_and_loses_no_accepted_job(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    stack = make_stack(tmp_path, private_redis.url)
    stack.start_api()
    stack.wait_ready_api()
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        accepted = [upload(http, images.jpeg()) for _ in range(5)]  # no worker yet: they wait
        private_redis.kill()
        for request in (
            lambda: http.post("/v1/jobs", content=images.jpeg(), headers={"content-type": "image/jpeg"}),
            lambda: http.get(f"/v1/jobs/{accepted[0]}"),
            lambda: http.get("/readyz"),
        ):
            started = time.monotonic()
            response = request()
            assert response.status_code == 503
            assert int(response.headers["retry-after"]) > 0
            assert time.monotonic() - started < 1.0
        assert [p for p in storage.tmp_dir(stack.settings.data_dir).iterdir()] == []
        private_redis.start()  # same port, same append-only file
        stack.start_worker()
        stack.start_scheduler()
        # Every job that got a 202 before the crash is still there and now runs.
        for job_id in accepted:
            assert http.get(f"/v1/jobs/{job_id}", params={"wait": 20}).json()["status"] == "finished"
        assert upload(http, images.jpeg())
    stack.stop()


def test_scheduler_down_for_a_while_then_the_sweep_cleans_up(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    stack = make_stack(tmp_path, private_redis.url)
    stack.start_api()
    stack.start_worker()
    stack.wait_ready()
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            job_id = upload(http, images.jpeg())
            assert http.get(f"/v1/jobs/{job_id}", params={"wait": 20}).json()["status"] == "finished"
            time.sleep(stack.settings.retention_seconds + 1)
            # Nothing ran the expiry: the files outlived retention while the scheduler was down.
            assert storage.output_path(stack.settings.data_dir, job_id).exists()
            stack.start_scheduler()
            assert eventually(lambda: http.get(f"/v1/jobs/{job_id}").status_code == 410, 15)
            assert not storage.job_dir(stack.settings.data_dir, job_id).exists()
    finally:
        stack.stop()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_is_507_and_leaves_no_partial_file(settings: Settings, tiny_disk: Path) -> None:
    full = replace(settings, data_dir=tiny_disk)
    noise = images.encode(Image.effect_noise((700, 700), 90).convert("RGB"), "PNG")
    assert len(noise) > 1024 * 1024
    with TestClient(create_app(full), raise_server_exceptions=False) as client:
        response = client.post("/v1/jobs", content=noise, headers={"content-type": "image/png"})
        assert response.status_code == 507
        assert response.json()["error"]["code"] == "insufficient_storage"
        assert str(tiny_disk) not in response.text
        assert [p for p in tiny_disk.rglob("*") if p.is_file()] == []
        small = client.post("/v1/jobs", content=images.jpeg(), headers={"content-type": "image/jpeg"})
        assert small.status_code == 202


def test_memory_cap_turns_an_allocation_bomb_into_too_large(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    # 120 Mpx of one colour: a few hundred KB on the wire, 360 MB once decoded. A worker uses
    # about 350 MiB of address space before it decodes anything; a job may add 200 MiB to it.
    stack = make_stack(
        tmp_path, private_redis.url, worker_memory_mb=200, max_pixels=200_000_000, retention_seconds=120
    ).start()
    try:
        flat = images.encode(Image.new("RGB", (12000, 10000), (200, 30, 30)), "PNG")
        assert len(flat) < 2 * 1024 * 1024
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            job_id = upload(http, flat, "image/png")
            job = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
            assert job["status"] == "failed", job
            assert job["error"]["code"] == "too_large"
            assert "memory" in job["error"]["message"]
            assert stack.processes["worker"].poll() is None
            small = upload(http, images.jpeg())
            assert http.get(f"/v1/jobs/{small}", params={"wait": 20}).json()["status"] == "finished"
    finally:
        stack.stop()


def test_everything_recovers_by_itself_after_a_redis_restart(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    with running(tmp_path, private_redis.url, retention_seconds=120) as (stack, http):
        assert http.get(f"/v1/jobs/{upload(http, images.jpeg())}", params={"wait": 20}).json()["status"] == (
            "finished"
        )
        private_redis.kill()
        time.sleep(2)
        assert (
            http.post("/v1/jobs", content=images.jpeg(), headers={"content-type": "image/jpeg"}).status_code
            == 503
        )
        private_redis.start()
        # No process was restarted by hand: API, worker pool and scheduler reconnect.
        assert eventually(lambda: http.get("/readyz").status_code == 200, 30)
        job_id = upload(http, images.jpeg())
        final = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        assert final.get("status") == "finished", final
        assert stack.processes["worker"].poll() is None and stack.processes["api"].poll() is None


def test_restarts_with_uploads_at_start_up_lose_no_job(tmp_path: Path, private_redis: PrivateRedis) -> None:
    stack = make_stack(tmp_path, private_redis.url, retention_seconds=120)
    stack.start_api()
    stack.start_scheduler()
    stack.wait_ready_api()
    connection = redis.Redis.from_url(private_redis.url)
    ids: list[str] = []
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            for round_ in range(5):
                name = f"worker-{round_}"
                stack.start_worker(name, workers=2)
                ids += [upload(http, images.jpeg()) for _ in range(3)]
                pool = stack.processes[name]
                assert eventually(lambda: len(descendants(pool.pid)) == 2, 30)  # noqa: B023
                workers = descendants(pool.pid)
                os.kill(pool.pid, signal.SIGKILL)  # the pool's supervisor dies, as with kill -9
                pool.wait()
                # Its workers never outlive it: they finish the job in hand, deregister and go.
                assert eventually(lambda: not [pid for pid in workers if alive(pid)], 20)  # noqa: B023
            assert connection.smembers("rq:workers") == set()
            stack.start_worker("worker-last")
            # Every acknowledged job ends, whether a worker finished it or the sweep requeued it.
            assert eventually(lambda: all(status_of(http, job_id) == "finished" for job_id in ids), 60)
    finally:
        connection.close()
        stack.stop()


def test_the_sweep_survives_a_stalled_scheduler_and_a_lost_schedule(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    stack = make_stack(tmp_path, private_redis.url, sweep_interval_seconds=1).start()
    connection = redis.Redis.from_url(private_redis.url)
    key = Job.key_for(names.SWEEP_SCHEDULE_ID)

    def sweep_ran_after(moment: float) -> bool:
        ended = Job.fetch(names.SWEEP_SCHEDULE_ID, connection=connection).ended_at
        return ended is not None and ended.timestamp() > moment

    try:
        assert eventually(lambda: sweep_ran_after(0), 15)
        scheduler = stack.processes["scheduler"]
        os.kill(scheduler.pid, signal.SIGSTOP)
        time.sleep(4)  # longer than twice the sweep interval
        os.kill(scheduler.pid, signal.SIGCONT)
        resumed = time.time()
        assert eventually(lambda: sweep_ran_after(resumed), 15)
        # Lost altogether (a Redis restored from an old copy, a careless FLUSH of one key):
        # the scheduler registers it again, with no restart of the API.
        connection.delete(key)
        connection.zrem("rq:scheduler:scheduled_jobs", names.SWEEP_SCHEDULE_ID)
        lost = time.time()
        assert eventually(lambda: connection.exists(key) == 1 and sweep_ran_after(lost), 15)
    finally:
        connection.close()
        stack.stop()
