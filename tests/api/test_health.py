"""Health probes and back-pressure through TestClient(create_app(settings)) on a real Redis:
/healthz, /readyz and its workers, 503 with Retry-After when Redis is down or the queue full."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from starlette.testclient import TestClient

from api import intake
from api.app import create_app
from shared import names
from shared.settings import Settings
from tests import images
from tests.files import leftover_files
from tests.ports import free_port


def test_healthz_is_always_up(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_needs_a_worker(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "worker" in response.json()["error"]["message"]


def test_readyz_counts_only_live_workers(client: TestClient, connection: redis.Redis) -> None:
    from worker.rqworker import ImgpressWorker

    worker = ImgpressWorker(list(names.WORKER_QUEUES), connection=connection)
    worker.register_birth()
    assert client.get("/readyz").json() == {"status": "ready", "workers": 1}
    # A worker killed without deregistering: RQ's set still names it, its heartbeat key expires.
    connection.delete(worker.key)
    assert worker.name.encode() in {key.split(b":")[-1] for key in connection.smembers("rq:workers")}
    assert client.get("/readyz").status_code == 503


def test_readyz_needs_a_compression_worker_not_only_a_webhook_one(
    client: TestClient, connection: redis.Redis
) -> None:
    from worker.rqworker import ImgpressWorker

    ImgpressWorker(list(names.WEBHOOK_QUEUES), connection=connection).register_birth()
    assert client.get("/readyz").status_code == 503
    ImgpressWorker(list(names.COMPRESSION_QUEUES), connection=connection).register_birth()
    assert client.get("/readyz").json() == {"status": "ready", "workers": 1}


def test_redis_down_is_503_with_retry_after_not_a_hang(settings: Settings) -> None:
    down = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        started = time.monotonic()
        for request in (
            lambda: client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}),
            lambda: client.get(f"/v1/jobs/{'0' * 32}"),
            lambda: client.get("/readyz"),
        ):
            response = request()
            assert response.status_code == 503
            assert response.headers["retry-after"].isdigit()
        # The original app's routes say it in their envelope, with HTTP 200.
        response = client.get(f"/task/{'0' * 32}")
        assert response.status_code == 200 and response.json()["code"] == 503
        assert response.headers["retry-after"].isdigit()
        assert time.monotonic() - started < 5
        assert client.get("/healthz").status_code == 200
    assert leftover_files(down) == []


def test_full_queue_is_503_with_retry_after(settings: Settings) -> None:
    with TestClient(create_app(replace(settings, max_queued=2)), raise_server_exceptions=False) as client:
        for _ in range(2):
            assert client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}).status_code == 202
        response = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "queue_full"
        assert int(response.headers["retry-after"]) > 0
        assert len(leftover_files(settings)) == 2


def test_queue_depth_is_read_again_near_the_limit_and_when_stale(
    redis_url: str, connection: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "rq:queue:" + names.QUEUE

    async def scenario() -> list[bool]:
        reader = AsyncRedis.from_url(redis_url)
        depth = intake.QueueDepth()
        try:
            seen = [await depth.full(reader, 10)]  # read: 0 waiting
            connection.rpush(key, *[f"other-{n}" for n in range(12)])  # another API process's uploads
            seen.append(await depth.full(reader, 10))  # fresh and far below the limit: not read
            depth.queued(5)  # this process queued 5: now halfway, so every check reads
            seen.append(await depth.full(reader, 10))
            connection.delete(key)
            seen.append(await depth.full(reader, 10))  # read: empty again
            connection.rpush(key, *[f"other-{n}" for n in range(12)])
            monkeypatch.setattr(intake, "DEPTH_REUSE_SECONDS", 0.0)  # stale at once
            seen.append(await depth.full(reader, 10))
            return seen
        finally:
            await reader.aclose()

    assert asyncio.run(scenario()) == [False, False, True, False, True]
