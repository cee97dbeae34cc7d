"""The HTTP server's limits against a real `python -m api`: header and body deadlines, the
connection budget, and forwarded headers trusted only from configured proxies."""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shared.settings import Settings
from tests import images
from tests.ports import free_port
from tests.redis_servers import DatabasePool
from tests.stack import Stack

pytestmark = pytest.mark.e2e


def api_stack(
    redis_databases: DatabasePool, root: Path, nofile: int | None = None, **overrides: Any
) -> Iterator[Stack]:
    """A real API process (no worker) with these settings, optionally with a file-descriptor limit."""
    with redis_databases.database() as url:
        settings = replace(
            Settings.from_env({}), redis_url=url, data_dir=root / "data", port=free_port(), **overrides
        )
        running = Stack(settings, root)
        command = [sys.executable, "-m", "api"]
        if nofile is not None:
            command = ["prlimit", f"--nofile={nofile}:{nofile}", *command]
        running.spawn("api", command)
        try:
            running.wait_ready_api()
            yield running
        finally:
            running.stop()


def open_upload(stack: Stack, declared: int = 1_000_000, sent: bytes = b"\x89PNG") -> socket.socket:
    """A raw upload whose headers are sent and whose body stops after `sent`."""
    sock = socket.create_connection((stack.settings.host, stack.settings.port), timeout=30)
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def answer(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent on this socket within `seconds` (b'' if it closed or said nothing)."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received and b"}" in received:
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def test_a_stalled_body_is_cut_off_with_408(redis_databases: DatabasePool, tmp_path: Path) -> None:
    for stack in api_stack(redis_databases, tmp_path, body_timeout_seconds=1):
        sock = open_upload(stack)
        started = time.monotonic()
        reply = answer(sock, 20)
        sock.close()
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"request_timeout" in reply
        assert time.monotonic() - started < 15
        assert not list((stack.settings.data_dir / "tmp").glob("*")), "the partial upload was kept"


def test_a_body_slower_than_the_minimum_rate_is_cut_off(
    redis_databases: DatabasePool, tmp_path: Path
) -> None:
    for stack in api_stack(redis_databases, tmp_path, body_timeout_seconds=2, min_upload_rate=1000):
        sock = open_upload(stack)
        # A few bytes each second: never idle for the body timeout, far below the rate.
        reply = b""
        for _ in range(20):
            try:
                sock.sendall(b"x" * 10)
            except OSError:
                break
            reply = answer(sock, 1)
            if reply:
                break
        sock.close()
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]


def test_headers_sent_too_slowly_are_cut_off(redis_databases: DatabasePool, tmp_path: Path) -> None:
    for stack in api_stack(redis_databases, tmp_path, header_timeout_seconds=1):
        sock = socket.create_connection((stack.settings.host, stack.settings.port), timeout=30)
        sock.settimeout(1)
        closed = False
        # One header line a second, never the blank line that ends them.
        for line in [b"GET /healthz HTTP/1.1\r\n"] + [b"X-Slow: 1\r\n"] * 19:
            try:
                sock.sendall(line)
                closed = sock.recv(1024) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
            if closed:
                break
        sock.close()
        assert closed, "a client that never finished its headers was kept for 20 s"


@pytest.mark.heavy
def test_many_slow_bodies_leave_the_probes_answering(redis_databases: DatabasePool, tmp_path: Path) -> None:
    # 1,024 descriptors, as in the report; 600 uploads that never finish their body.
    for stack in api_stack(redis_databases, tmp_path, nofile=1024):
        sockets = []
        try:
            for _ in range(600):
                try:
                    sockets.append(open_upload(stack))
                except OSError:
                    break
            time.sleep(2)
            probes = []
            for path in ("/healthz", "/readyz", "/healthz"):
                try:
                    probes.append(httpx.get(f"{stack.url}{path}", timeout=5).status_code)
                except httpx.TransportError:
                    probes.append(0)
            # Only the sockets with something to read are read: waiting 50 ms on each of the
            # hundreds of admitted ones, which hear nothing, took 15 s.
            poller = select.poll()
            for sock in sockets:
                poller.register(sock, select.POLLIN)
            readable = {descriptor for descriptor, _ in poller.poll(50)}
            refused = [answer(sock, 0.05) for sock in sockets if sock.fileno() in readable]
        finally:
            for sock in sockets:
                sock.close()
        turned_away = [reply for reply in refused if reply]
        print(f"\n600 slow bodies: probes {probes}, {len(turned_away)} answered at once")
        # /readyz is 503 here (no worker), but it answers.
        assert probes == [200, 503, 200]
        assert turned_away, "no upload was refused: the budget is above what the descriptors allow"
        for reply in turned_away:
            assert reply.startswith(b"HTTP/1.1 503"), reply[:200]
            assert b"retry-after:" in reply.lower()


def upload_forwarded_for(url: str, forwarded: str) -> int:
    """The status of an upload that says it was forwarded for `forwarded`."""
    headers = {"Content-Type": "image/jpeg", "X-Forwarded-For": forwarded}
    return httpx.post(f"{url}/v1/jobs", content=images.jpeg(), headers=headers, timeout=10).status_code


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    redis_databases: DatabasePool, tmp_path: Path
) -> None:
    for stack in api_stack(redis_databases, tmp_path, rate_limit=(3, 60)):
        statuses = []
        for number in range(6):
            # A rotating, partly junk, X-Forwarded-For from loopback.
            forwarded = f"203.0.113.{number}" if number % 2 else f"junk-{number}"
            statuses.append(upload_forwarded_for(stack.url, forwarded))
        keys = redis.Redis.from_url(stack.settings.redis_url).keys("imgpress:rate:*")
        assert statuses == [202, 202, 202, 429, 429, 429]
        assert [key.decode().split(":")[2] for key in keys] == ["127.0.0.1"]


def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    redis_databases: DatabasePool, tmp_path: Path
) -> None:
    for stack in api_stack(redis_databases, tmp_path, rate_limit=(1, 60), forwarded_allow_ips=("127.0.0.1",)):
        statuses = []
        forwarded_values = ["203.0.113.1", "203.0.113.2", "203.0.113.1", "not-an-address", "also junk"]
        forwarded_values += ["2001:db8:1:2::1", "2001:db8:1:2::beef"]  # one /64: one caller
        for forwarded in forwarded_values:
            statuses.append(upload_forwarded_for(stack.url, forwarded))
        keys = redis.Redis.from_url(stack.settings.redis_url).keys("imgpress:rate:*")
        assert statuses == [202, 202, 429, 202, 429, 202, 429]
        # Junk values share one counter instead of making a key each.
        whose = sorted(key.decode().removeprefix("imgpress:rate:").rsplit(":", 1)[0] for key in keys)
        assert whose == ["2001:db8:1:2::/64", "203.0.113.1", "203.0.113.2", "unknown"]


def test_a_flood_of_small_form_fields_is_refused_early(redis_databases: DatabasePool, tmp_path: Path) -> None:
    for stack in api_stack(redis_databases, tmp_path):
        sock = socket.create_connection((stack.settings.host, stack.settings.port), timeout=30)
        head = (
            "POST /v1/jobs HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: multipart/form-data; boundary=B\r\n\r\n"
        )
        sock.sendall(head.encode())
        # Many small fields of one name, then (never reached) the file: 64 KiB per chunk.
        field = b'--B\r\nContent-Disposition: form-data; name="quality"\r\n\r\n80\r\n'
        piece = field * (65536 // len(field))
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        sent, reply, limit = 0, b"", 64 * 1024 * 1024
        while sent < limit:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                reply = answer(sock, 5)
                break
            try:
                sock.sendall(chunk)
            except OSError:
                reply = answer(sock, 5)
                break
            sent += len(chunk)
        if not reply:
            with contextlib.suppress(OSError):
                sock.sendall(b"0\r\n\r\n")
            reply = answer(sock, 30)
        sock.close()
        print(f"\nform-field flood: {sent / 2**20:.1f} MiB sent before the answer")
        assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
        assert sent < limit / 4


def test_streams_past_the_budget_get_503_and_started_ones_run_on(
    redis_databases: DatabasePool, tmp_path: Path
) -> None:
    for stack in api_stack(redis_databases, tmp_path, max_connections=5):
        job = httpx.post(
            f"{stack.url}/v1/jobs", content=images.jpeg(), headers={"Content-Type": "image/jpeg"}, timeout=10
        ).json()
        url = f"{stack.url}/v1/jobs/{job['id']}/events"
        with contextlib.ExitStack() as streams:
            opened = [streams.enter_context(httpx.stream("GET", url, timeout=30)) for _ in range(5)]
            assert [response.status_code for response in opened] == [200] * 5
            lines = [response.iter_lines() for response in opened]
            assert all(
                next(line for line in stream if line.startswith("event:")) == "event: queued"
                for stream in lines
            )
            refused = httpx.get(url, timeout=10)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "overloaded"
            assert int(refused.headers["retry-after"]) > 0
            assert httpx.get(f"{stack.url}/healthz", timeout=10).status_code == 200
            # One stream ends, which makes room for the DELETE; the others hear of it.
            opened[0].close()
            time.sleep(0.5)
            assert httpx.delete(f"{stack.url}/v1/jobs/{job['id']}", timeout=10).status_code == 204
            ends = [next(line for line in stream if line.startswith("event:")) for stream in lines[1:]]
            assert ends == ["event: deleted"] * 4


def test_an_argument_is_a_usage_error_naming_the_variables() -> None:
    """`python -m api --port 9000` must not start on another port than asked: settings are variables."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "api", "--port", "9000"], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unrecognized arguments: --port 9000" in done.stderr and "Traceback" not in done.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "api", "--help"], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 0 and "IMGPRESS_PORT" in help_text.stdout


def test_a_sigterm_then_a_ctrl_c_still_shuts_the_app_down(
    redis_databases: DatabasePool, tmp_path: Path
) -> None:
    """At a Ctrl-C, scripts/run sends the API a SIGTERM that may come before the terminal's SIGINT:
    that SIGINT is no second Ctrl-C, so the app still shuts down, without a traceback."""
    for stack in api_stack(redis_databases, tmp_path):
        api = stack.processes["api"]
        api.send_signal(signal.SIGTERM)
        time.sleep(0.05)  # handled alone, before the SIGINT (both at once are taken SIGINT first)
        api.send_signal(signal.SIGINT)
        assert api.wait(timeout=30) == 0
        log = (tmp_path / "api.log").read_text()
        assert "Application shutdown complete." in log and "Traceback" not in log, log
