"""`scripts/run` as a user runs it, in a process group of its own, and the processes it leaves."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tests import images
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    """A process's command line, words joined by spaces ('' once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except FileNotFoundError:
        return ""


def slow_png() -> bytes:
    """Noise a worker needs a few seconds for (lossless PNG with optimize)."""
    return images.encode(Image.effect_noise((2600, 2600), 80).convert("RGB"), "PNG", compress_level=1)


class Service:
    """`scripts/run` started as a terminal starts a command: the leader of its own process group."""

    def __init__(self, root: Path, redis_url: str | None = None, **settings: str) -> None:
        self.root = root
        self.port = free_port()
        self.log_path = root / "run.log"
        env = {k: v for k, v in os.environ.items() if k != "IMGPRESS_REDIS_URL"}
        if redis_url:
            env["IMGPRESS_REDIS_URL"] = redis_url
        env.update(IMGPRESS_PORT=str(self.port), IMGPRESS_DATA_DIR=str(root / "data"), **settings)
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.started: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *arguments: str) -> Service:
        """Start it and wait until /readyz answers 200 (a worker is registered)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(ROOT / "scripts" / "run"), *arguments],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 240  # the first run may install the project into .venv
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    self.started = descendants(self.process.pid)
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"scripts/run did not get ready:\n{self.output()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, object]]:
        """Every line it printed, each parsed as JSON (fails on the first line that is not)."""
        records = []
        for number, line in enumerate(self.output().splitlines(), 1):
            try:
                records.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        return records

    def private_redis_url(self) -> str:
        """The URL of the Redis scripts/run started for itself (from the line that announced it)."""
        found = re.search(r"private Redis \(Valkey\) at (redis://\S+?)[,\"]", self.output())
        assert found, self.output()
        return found[1]

    def children(self) -> dict[str, int]:
        """scripts/run's own children by role: api, worker, scheduler, redis."""
        roles = {}
        for pid in descendants(self.pid):
            words = command_line(pid)
            if words.endswith("-m api"):
                roles["api"] = pid
            elif words.endswith("-m worker"):
                roles["worker"] = pid
            elif words.endswith("-m worker.scheduler"):
                roles["scheduler"] = pid
            elif "valkey-server" in words:
                roles["redis"] = pid
        return roles

    def workers(self) -> set[int]:
        """The pool's worker processes."""
        return descendants(self.children()["worker"])

    def signal(self, how: str, signum: int) -> None:
        """Signal the whole group (Ctrl-C, `docker stop`, systemd), the script alone, or each
        process on its own as Docker stops each container's (Redis excepted: compose stops it last)."""
        if how == "group":
            os.killpg(self.pid, signum)
        elif how == "script":
            os.kill(self.pid, signum)
        else:
            assert how == "each", how
            redis = self.children().get("redis")
            for pid in descendants(self.pid) - {redis}:
                if not command_line(pid).startswith(("sleep", "curl")):
                    # One signalled before may have stopped another already (the script its
                    # children): stopping what has ended is a no-op, as for Docker.
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signum)

    def wait_stopped(self, seconds: float) -> float:
        """Seconds until the script and every process it started are gone (fails past `seconds`)."""
        assert self.process is not None
        began = time.monotonic()
        deadline = began + seconds
        everything = self.started | descendants(self.pid)
        while time.monotonic() < deadline:
            if self.process.poll() is not None and not [pid for pid in everything if alive(pid)]:
                return time.monotonic() - began
            time.sleep(0.05)
        left = {pid: command_line(pid) for pid in everything if alive(pid)}
        raise AssertionError(f"still running after {seconds} s: {left}\n{self.output()}")

    def kill(self) -> None:
        """Make sure nothing is left (after a failed test)."""
        everything = self.started | (descendants(self.pid) if self.process else set())
        for pid in everything:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def bench_load(*arguments: str, timeout: float) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run scripts/bench_load.py with `arguments`; its report (the last line, JSON) and the run."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_load.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done
