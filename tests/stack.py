"""The real imgpress processes (`python -m api`, `python -m worker`, `python -m worker.scheduler`)
for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from shared.settings import Settings
from tests.ports import free_port
from tests.redis_servers import DatabasePool

BIN = Path(sys.executable).parent


def worker_command(workers: int, queues: str = "compression") -> list[str]:
    """The one worker command (`python -m worker`), as scripts/run and docker-compose.yml run it."""
    return [sys.executable, "-m", "worker", "--workers", str(workers), "--queues", queues]


@dataclass
class Stack:
    """Running API, worker and scheduler processes sharing one Redis database and data dir."""

    settings: Settings
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def env(self) -> dict[str, str]:
        # Every process writes its metrics to one folder, as scripts/run sets up.
        metrics = str(self.log_dir / "metrics")
        return {**os.environ, **self.settings.to_env(), "PROMETHEUS_MULTIPROC_DIR": metrics}

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        """Start one process, logging to log_dir/name.log."""
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        # A session of its own, so that stop() can end the process's children with it.
        process = subprocess.Popen(
            command, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes[name] = process
        return process

    def start_api(self) -> None:
        self.spawn("api", [sys.executable, "-m", "api"])

    def start_worker(self, name: str = "worker", workers: int = 1) -> None:
        """The worker command scripts/run and docker-compose use: a pool of in-process workers."""
        self.spawn(name, worker_command(workers))

    def start_webhook_worker(self) -> None:
        """The webhook workers scripts/run and docker-compose start beside the compression ones."""
        self.spawn("webhook-worker", worker_command(self.settings.webhook_workers, "webhooks"))

    def start_burst_worker(self) -> subprocess.Popen[bytes]:
        """Start `python -m worker --burst`, which runs every queued job to its end, then exits."""
        return self.spawn("burst-worker", [*worker_command(1, "all"), "--burst"])

    def run_worker_burst(self) -> None:
        """Run every queued job to its end with `python -m worker --burst`, and wait for it."""
        assert self.start_burst_worker().wait(timeout=60) == 0

    def start_scheduler(self) -> None:
        self.spawn("scheduler", [sys.executable, "-m", "worker.scheduler", "--interval", "0.5"])

    def start(self) -> Stack:
        self.start_api()
        self.start_worker()
        self.start_webhook_worker()
        self.start_scheduler()
        self.wait_ready()
        return self

    def wait_ready_api(self, seconds: float = 30) -> None:
        """Wait until the API answers (it may still be without a worker)."""
        self.wait_ready(seconds, path="/healthz")

    def wait_ready(self, seconds: float = 30, path: str = "/readyz") -> None:
        """Wait until /readyz is 200: Redis answers and a worker is registered."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}{path}", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"stack not ready; logs in {self.log_dir}")

    def stop(self) -> None:
        """SIGTERM every process, then SIGKILL whatever is left of each one's process group.

        A worker pool left behind (one that lost Redis waits for its workers for ever) would
        reconnect to a later test's Redis if that one got the same port, and take its jobs.
        """
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def rss_kib(self, name: str) -> int:
        """Peak resident memory (VmHWM) of one process, in KiB."""
        return _peak_kib(self.processes[name].pid)

    def children_rss_kib(self, name: str) -> list[int]:
        """Peak resident memory (VmHWM) of each child of one process (a pool's workers), in KiB."""
        pid = self.processes[name].pid
        children = []
        for thread in Path(f"/proc/{pid}/task").iterdir():
            children += [int(child) for child in (thread / "children").read_text().split()]
        return [_peak_kib(child) for child in children]


def _peak_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def running_stack(databases: DatabasePool, root: Path, **overrides: Any) -> Iterator[Stack]:
    """A started stack on a database of its own and a data dir, stopped when the caller is done."""
    with databases.database() as url:
        settings = replace(
            Settings.from_env({}), redis_url=url, data_dir=root / "data", port=free_port(), **overrides
        )
        running = Stack(settings, root).start()
        try:
            yield running
        finally:
            running.stop()


def eventually(check: Callable[[], bool], seconds: float = 15) -> bool:
    """True as soon as `check()` is, or False after `seconds` (a bounded wait for real processes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False
