"""Hostile webhook receivers on 127.0.0.1 for the tests: one that answers a huge body, one that
drips its reply a byte at a time. Each counts what it managed to send."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Hostile:
    """A listening socket on 127.0.0.1 whose every connection is answered by `reply`."""

    kind: str
    size: int = 0
    sock: socket.socket = field(default_factory=socket.socket)
    #: Bytes of reply sent on each connection before the worker hung up (or all were sent).
    sent: list[int] = field(default_factory=list)
    #: Seconds from the request's arrival until the worker hung up, per connection.
    held: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        sent, begun = 0, time.monotonic()
        try:
            _read_request(conn)
            begun = time.monotonic()
            if self.kind == "huge":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.size)
                block = b"x" * (1 << 20)
                while sent < self.size:
                    conn.sendall(block)
                    sent += len(block)
            else:
                # Each byte well inside any per-read timeout; the whole reply never ends.
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
                    conn.sendall(bytes([byte]))
                    sent += 1
                    time.sleep(0.5)
        except OSError:
            pass
        finally:
            self.held.append(time.monotonic() - begun)
            self.sent.append(sent)
            conn.close()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("closed before the request ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [
        line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    ]
    while lengths and len(body) < int(lengths[0]):
        body += conn.recv(65536)


@contextmanager
def hostile(kind: str, size: int = 0) -> Iterator[Hostile]:
    """A running `huge` (a `size`-byte body) or `drip` (a byte every 0.5 s) receiver."""
    receiver = Hostile(kind, size)
    receiver.sock.bind(("127.0.0.1", 0))
    receiver.sock.listen(64)
    threading.Thread(target=receiver.serve, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver.sock.close()
