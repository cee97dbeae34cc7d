"""The rq-dashboard that `scripts/run --dashboard` starts, as a real process: bound to loopback,
and refusing requests addressed to another host or POSTed from another origin."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from rq import Queue

from tests.ports import free_port
from tests.redis_servers import DatabasePool

pytestmark = pytest.mark.e2e

pytest.importorskip("rq_dashboard")

QUEUE = "imgpress"


@pytest.fixture
def dashboard(redis_databases: DatabasePool, tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    """(base URL, Redis) of a dashboard started the way scripts/run starts it."""
    with redis_databases.database() as url:
        port = free_port()
        log = open(tmp_path / "dashboard.log", "wb")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [sys.executable, "-m", "api.dashboard", "--redis-url", url, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(base, timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            connection = redis.Redis.from_url(url)
            yield base, connection
            connection.close()
        finally:
            process.terminate()
            process.wait(timeout=10)
            log.close()


def queued(connection: redis.Redis) -> int:
    return Queue(QUEUE, connection=connection).count


def enqueue(connection: redis.Redis) -> None:
    Queue(QUEUE, connection=connection).enqueue("worker.tasks.sweep")


def test_a_cross_origin_post_cannot_empty_a_queue(dashboard: tuple[str, redis.Redis]) -> None:
    base, connection = dashboard
    enqueue(connection)
    empty = f"{base}/queue/{QUEUE}/queued/empty"
    # A page on another site posting to the dashboard, as a browser would send it.
    forged = httpx.post(empty, headers={"Origin": "https://attacker.example"}, timeout=10)
    assert forged.status_code == 403
    no_origin = httpx.post(empty, timeout=10)
    assert no_origin.status_code == 403
    assert queued(connection) == 1
    # The dashboard's own page may.
    own = httpx.post(empty, headers={"Origin": base}, timeout=10)
    assert own.status_code == 200
    assert queued(connection) == 0


def test_a_request_for_another_host_name_is_refused(dashboard: tuple[str, redis.Redis]) -> None:
    base, connection = dashboard
    enqueue(connection)
    port = base.rsplit(":", 1)[1]
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, the Host header gives it away.
    rebound = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
    assert httpx.post(f"{base}/queue/{QUEUE}/queued/empty", headers=rebound, timeout=10).status_code == 403
    assert httpx.get(f"{base}/0/data/queues.json", headers=rebound, timeout=10).status_code == 403
    assert queued(connection) == 1
    assert httpx.get(f"{base}/0/data/queues.json", timeout=10).status_code == 200


def test_it_listens_on_loopback_only(dashboard: tuple[str, redis.Redis]) -> None:
    base, _ = dashboard
    port = int(base.rsplit(":", 1)[1])
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [line.split()[1] for line in listening if line.split()[3] == "0A"]  # state LISTEN
    assert f"0100007F:{port:04X}" in local
    assert f"00000000:{port:04X}" not in local
