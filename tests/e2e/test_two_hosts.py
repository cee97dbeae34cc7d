"""Two hosts that share only Redis and an S3 bucket (rclone's S3 server): two APIs and two worker
pools with different data dirs; and a Redis that wants a password, plainly and over TLS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import redis

from shared.settings import Settings
from tests import images
from tests.files import leftover_files
from tests.ports import free_port
from tests.processes import bench_load, slow_png
from tests.redis_servers import DatabasePool, secured_redis
from tests.s3_servers import object_keys, s3_client
from tests.stack import Stack, eventually

pytestmark = pytest.mark.e2e


def host(settings: Settings, root: Path, name: str) -> Stack:
    """One host's processes: its own data dir and port, the shared Redis and bucket."""
    folder = root / name
    folder.mkdir()
    return Stack(replace(settings, data_dir=folder / "data", port=free_port()), folder)


@pytest.fixture
def hosts(redis_databases: DatabasePool, s3_bucket: str, tmp_path: Path) -> Iterator[tuple[Stack, Stack]]:
    with redis_databases.database() as url:
        shared = replace(
            Settings.from_env({}),
            redis_url=url,
            storage_url=f"s3://{s3_bucket}/imgpress",
            # Long enough for each result to be downloaded on a loaded machine, then gone.
            retention_seconds=8,
            sweep_interval_seconds=1,
            max_queued=40,
        )
        first, second = host(shared, tmp_path, "host-a"), host(shared, tmp_path, "host-b")
        try:
            first.start()  # API, worker pool, webhook workers, scheduler
            second.start_api()
            second.start_worker(workers=2)
            second.wait_ready()
            yield first, second
        finally:
            first.stop()
            second.stop()


@pytest.mark.heavy
def test_two_hosts_lose_nothing_and_leave_nothing(
    hosts: tuple[Stack, Stack], s3_endpoint: str, s3_bucket: str
) -> None:
    first, second = hosts
    report, done = bench_load(
        "--url", first.url,
        "--url", second.url,
        "--count", "120",
        "--concurrency", "16",
        "--max-seconds", "150",
        "--download",
        "--data-dir", str(first.settings.data_dir),
        "--data-dir", str(second.settings.data_dir),
        "--redis-url", first.settings.redis_url,
        "--storage-url", first.settings.storage_url,
        "--settle", "12",
        timeout=240,
    )  # fmt: skip
    assert report["accepted"] > 0 and report["accepted"] + report["refused_503"] == 120
    assert report["lost"] == 0 and report["failed"] == 0
    # Each result was downloaded from the API that did not take its upload.
    assert report["downloaded"] == report["finished"] == report["accepted"], report
    assert report["server_errors_5xx"] == 0 and report["transport_errors"] == 0
    assert report["files_left"] == 0 and report["redis_keys_left"] == 0 and report["objects_left"] == 0
    assert object_keys(s3_endpoint, s3_bucket) == []
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("tls", [False, True], ids=["password", "tls"])
def test_a_redis_with_a_password_and_tls_serves_every_process(
    tls: bool, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    try:
        context = secured_redis(tmp_path / "redis", free_port(), "a long redis password", tls)
        url = context.__enter__()
    except (RuntimeError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no redis-server with TLS here: {exc}")
    try:
        settings = replace(
            Settings.from_env({}),
            redis_url=url,
            data_dir=tmp_path / "data",
            port=free_port(),
            storage_url=f"s3://{s3_bucket}",
            retention_seconds=2,
            sweep_interval_seconds=1,
        )
        stack = Stack(settings, tmp_path).start()
        try:
            with httpx.Client(base_url=stack.url, timeout=30) as client:
                job = client.post("/v1/jobs", params={"wait": 20}, content=images.jpeg(), headers={
                    "content-type": "image/jpeg"
                })  # fmt: skip
                assert job.status_code == 200 and job.json()["status"] == "finished", job.text
                result = client.get(f"/v1/jobs/{job.json()['id']}/result")
                assert result.status_code == 200 and result.headers["content-type"] == "image/jpeg"
                # The scheduler's expiry (over the same secured Redis) removes the objects.
                assert eventually(lambda: object_keys(s3_endpoint, s3_bucket) == [], 20)
                assert client.get(f"/v1/jobs/{job.json()['id']}").status_code == 410
            assert leftover_files(settings) == []
        finally:
            stack.stop()
    finally:
        context.__exit__(None, None, None)


def test_a_worker_host_that_dies_mid_job_leaves_no_object_behind(
    redis_databases: DatabasePool, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    with redis_databases.database() as url:
        shared = replace(
            Settings.from_env({}),
            redis_url=url,
            storage_url=f"s3://{s3_bucket}",
            retention_seconds=60,
            # The sweep that finds the lapsed lease runs each second, not each 30 s.
            sweep_interval_seconds=1,
        )
        front, doomed_host, spare = (host(shared, tmp_path, name) for name in ("front", "b", "c"))
        try:
            front.start_api()
            front.start_scheduler()
            doomed_host.start_worker()
            front.wait_ready()
            with httpx.Client(base_url=front.url, timeout=30) as http:
                upload = http.post("/v1/jobs", content=slow_png(), headers={"content-type": "image/png"})
                doomed = upload.json()["id"]
                assert eventually(lambda: http.get(f"/v1/jobs/{doomed}").json()["status"] == "started", 60)
                # The whole worker host goes at once, as when its machine dies.
                os.killpg(doomed_host.processes["worker"].pid, signal.SIGKILL)
                doomed_host.processes["worker"].wait()
                spare.start_worker()
                assert eventually(lambda: http.get(f"/v1/jobs/{doomed}").json()["status"] == "failed", 60)
                assert http.get(f"/v1/jobs/{doomed}").json()["error"]["code"] == "worker_lost"
                # Its upload went with the failure; the job's record stays until retention.
                assert object_keys(s3_endpoint, s3_bucket) == []
                job = http.post("/v1/jobs", params={"wait": 30}, content=images.jpeg(), headers={
                    "content-type": "image/jpeg"
                })  # fmt: skip
                assert job.json()["status"] == "finished"
        finally:
            for stack in (front, doomed_host, spare):
                stack.stop()


def test_a_waited_upload_rides_through_redis_to_a_worker_host_and_back(
    redis_databases: DatabasePool, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    with redis_databases.database() as url:
        shared = replace(
            Settings.from_env({}), redis_url=url, storage_url=f"s3://{s3_bucket}", retention_seconds=3,
            sweep_interval_seconds=1,
        )  # fmt: skip
        front, worker_host = host(shared, tmp_path, "front"), host(shared, tmp_path, "worker")
        connection = redis.Redis.from_url(url)
        answers: list[httpx.Response] = []

        def upload() -> None:
            with httpx.Client(base_url=front.url, timeout=60) as http:
                answers.append(http.post("/v1/jobs", params={"wait": 30}, content=images.jpeg(), headers={
                    "content-type": "image/jpeg", "accept": "image/*"
                }))  # fmt: skip

        try:
            front.start_api()
            front.start_scheduler()
            front.wait_ready_api()
            waiting = threading.Thread(target=upload, daemon=True)
            waiting.start()
            assert eventually(lambda: len(connection.keys("imgpress:carried:*")) == 1, 20)
            [carried] = connection.keys("imgpress:carried:*")
            job_id = carried.decode().split(":")[2]
            # Without the bucket's copy of the upload, only what Redis carries can be compressed.
            s3_client(s3_endpoint).delete_object(Bucket=s3_bucket, Key=f"jobs/{job_id}/input")
            worker_host.start_worker()
            waiting.join(60)
            [answer] = answers
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
            assert json.loads(answer.headers["imgpress-job"])["id"] == job_id
            assert connection.keys("imgpress:carried:*") == []
            # The scheduler's expiry takes the output and the record.
            assert eventually(lambda: object_keys(s3_endpoint, s3_bucket) == [], 20)
            with httpx.Client(base_url=front.url, timeout=30) as http:
                assert http.get(f"/v1/jobs/{job_id}").status_code == 410
            assert connection.keys("imgpress:carried:*") == []
        finally:
            front.stop()
            worker_host.stop()
