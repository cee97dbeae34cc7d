"""`scripts/run` starts the whole service (with rq-dashboard) and SIGTERM stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests import images
from tests.ports import free_port
from tests.processes import alive, descendants

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def dashboard_queues() -> set[str]:
    """The queues rq-dashboard (started by `scripts/run --dashboard`) shows; it may still be starting."""
    deadline = time.monotonic() + 60
    while True:
        try:
            data = httpx.get("http://127.0.0.1:9181/0/data/queues.json", timeout=2).json()
            return {queue["name"] for queue in data["queues"]}
        except (httpx.TransportError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_run_serves_then_sigterm_leaves_nothing_running(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "IMGPRESS_REDIS_URL"}
    env.update(IMGPRESS_PORT=str(port), IMGPRESS_DATA_DIR=str(tmp_path / "data"), IMGPRESS_WORKERS="1")
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed below
    command = [str(ROOT / "scripts" / "run"), "--dashboard"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240  # the first run may install the project into .venv
        ready = False
        while time.monotonic() < deadline and process.poll() is None and not ready:
            try:
                ready = httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready, (tmp_path / "run.log").read_text()
        # The private Redis (no IMGPRESS_REDIS_URL) keeps its data under the data dir.
        assert (tmp_path / "data" / "redis").is_dir()
        job = httpx.post(f"{url}/v1/jobs", files={"file": ("a.jpg", images.jpeg())}).json()
        done = httpx.get(f"{url}/v1/jobs/{job['id']}", params={"wait": 20}, timeout=30).json()
        assert done["status"] == "finished"
        assert "imgpress" in dashboard_queues()
        started = descendants(process.pid)
        assert len(started) >= 5  # redis, api, worker, scheduler, dashboard
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        time.sleep(0.5)
        assert [pid for pid in started if alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
