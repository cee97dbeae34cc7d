"""An S3 endpoint for the tests: moto's S3 server (a real HTTP process on loopback, under uvicorn),
and a fresh bucket per test with the AWS variables that point the service at it."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.ports import free_port

#: Credentials moto accepts (any are accepted); never real ones.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "imgpress-test",
    "AWS_SECRET_ACCESS_KEY": "imgpress-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


#: moto's S3 server application (the one `python -m moto.server` runs) served by uvicorn, which
#: keeps connections alive as real S3 servers do; werkzeug's server closes every one.
KEEP_ALIVE_SERVER = """
import sys
import uvicorn
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
uvicorn.run(app, host=host, port=port, interface="wsgi", log_level="warning")
"""


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """Start moto's server on a free loopback port; its endpoint URL until the block ends."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "moto.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", KEEP_ALIVE_SERVER, "127.0.0.1", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"moto server did not start; see {log_dir / 'moto.log'}") from None
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

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
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
