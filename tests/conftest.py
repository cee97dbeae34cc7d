"""Fixtures: a real Redis (never a fake; each test borrows its own database, flushed before and
after), settings on a private data dir, the app, workers."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.client import PubSub
from starlette.testclient import TestClient

from api.app import create_app
from shared import names
from shared.settings import Settings
from tests.ports import free_port
from tests.redis_servers import DatabasePool, databases_for, start_redis
from tests.s3_servers import aws_env, new_bucket, s3_server
from worker import tasks
from worker.rqworker import LISTENER_WAKE_SECONDS, ImgpressWorker

ROOT = Path(__file__).resolve().parents[1]
# The server installs no package and runs from its checkout: the processes tests start find it here.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (no database number) of the Redis the tests use."""
    configured = os.environ.get("IMGPRESS_REDIS_URL")
    if configured:
        yield configured.rsplit("/", 1)[0] if configured.count("/") > 2 else configured
        return
    try:
        redis.Redis(socket_connect_timeout=0.5).ping()
        yield "redis://127.0.0.1:6379"
        return
    except redis.ConnectionError:
        pass
    port = free_port()
    process = start_redis(port, tmp_path_factory.mktemp("valkey"))
    yield f"redis://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_databases(redis_server: str) -> DatabasePool:
    """The database numbers this test process lends out; each pytest-xdist worker has its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return DatabasePool(redis_server, databases_for(worker, workers))


@pytest.fixture
def redis_url(redis_databases: DatabasePool) -> Iterator[str]:
    """This test's own Redis database."""
    with redis_databases.database() as url:
        yield url


@pytest.fixture
def connection(redis_url: str) -> Iterator[redis.Redis]:
    """A client on this test's database."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """Settings on this test's database and a private data dir, with small limits."""
    base = Settings.from_env({})
    return replace(
        base,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        max_upload_bytes=2 * 1024 * 1024,
        max_pixels=4_000_000,
        retention_seconds=60,
        job_timeout_seconds=30,
        # Jobs run inside the test process here: an address-space cap would cap pytest itself.
        worker_memory_mb=0,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The API app (lifespan running) on these settings."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def run_jobs(
    settings: Settings, connection: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    """A function that runs every queued job to the end with a real RQ worker (in-process)."""
    for variable, value in settings.to_env().items():
        monkeypatch.setenv(variable, value)
    tasks.settings.cache_clear()

    def run() -> None:
        worker = ImgpressWorker(list(names.WORKER_QUEUES), connection=connection)
        worker.work(burst=True, logging_level="WARNING")

    yield run
    tasks.settings.cache_clear()


@pytest.fixture
def quick_stock_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stock RQ workers let their command listener sleep 60 s and redis-py waits for it to wake
    when the worker stops: wake it as often as ImgpressWorker's, or a run may take a minute."""
    original = PubSub.run_in_thread

    def run_in_thread(self: PubSub, sleep_time: float = 0.0, *args: Any, **kwargs: Any) -> Any:
        return original(self, min(sleep_time, LISTENER_WAKE_SECONDS), *args, **kwargs)

    monkeypatch.setattr(PubSub, "run_in_thread", run_in_thread)


@pytest.fixture(autouse=True)
def one_heavy_test_at_a_time(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A test marked heavy holds a lock that every pytest-xdist worker of the run shares, so two
    heavy tests never load the machine at once (a worker waits for the other's to end)."""
    if request.node.get_closest_marker("heavy") is None or "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    # Each worker's base temp is a folder of the run's own.
    with open(tmp_path_factory.getbasetemp().parent / "heavy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(autouse=True)
def restore_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app sets Pillow's process-wide bomb limit from its settings; undo it after each test."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


@pytest.fixture(scope="session")
def s3_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' S3 server's folder: its buckets and its log (`s3.log`)."""
    return tmp_path_factory.mktemp("s3")


@pytest.fixture(scope="session")
def s3_endpoint(s3_root: Path) -> Iterator[str]:
    """URL of the tests' own S3 server (rclone's, a separate process on loopback)."""
    with s3_server(s3_root) as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty bucket on the tests' S3 server; the AWS variables point at it."""
    for variable, value in aws_env(s3_endpoint).items():
        monkeypatch.setenv(variable, value)
    return new_bucket(s3_endpoint)
