#!/usr/bin/env python3
"""CPU per request of RUNNING S3 servers on this machine (it starts nothing), taking turns in one run.

    .venv/bin/python scripts/bench_s3_server.py --server rclone http://127.0.0.1:9000 \
        --server other http://127.0.0.1:9001 --count 1000 --rounds 4 [--bytes 60000]

Each round sends every server in turn count/rounds PUTs of new `jobs/{id}/input` objects, then
a GET and a HEAD of each, one after another on one keep-alive obstore client, as the service
does; the objects stay until the end (a service's bucket holds every job of its retention
period), when each is DELETEd. The server's CPU (its process tree, from /proc) is read around
each batch. Reports CPU ms per request and per op for each server, and the client's own CPU
(time.process_time). Keys: tests/s3_servers.py's, or the URL's user and password
(`http://KEY:SECRET@127.0.0.1:4568`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import obstore  # noqa: E402
from botocore.config import Config  # noqa: E402
from measure import listening_pid, print_report, tree, usage  # noqa: E402
from obstore.store import S3Store  # noqa: E402

from tests.s3_servers import CREDENTIALS  # noqa: E402

OPS = ("put", "get", "head", "delete")


def bucket_store(url: str) -> S3Store:
    """A new bucket on the server at `url`, as an obstore client, path-style as the service makes one."""
    parts = urlsplit(url)
    endpoint = f"{parts.scheme}://{parts.hostname}:{parts.port}"
    key = parts.username or CREDENTIALS["AWS_ACCESS_KEY_ID"]
    secret = parts.password or CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    region = CREDENTIALS["AWS_DEFAULT_REGION"]
    bucket = f"bench-{secrets.token_hex(4)}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(s3={"addressing_style": "path"}),
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=region,
    ).create_bucket(Bucket=bucket)
    return S3Store(
        bucket,
        endpoint=endpoint,
        virtual_hosted_style_request=False,
        access_key_id=key,
        secret_access_key=secret,
        region=region,
        client_options={"allow_http": True, "timeout": timedelta(seconds=60)},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", nargs=2, action="append", metavar=("NAME", "URL"), required=True)
    parser.add_argument("--count", type=int, default=1000, help="objects per server")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--bytes", type=int, default=60_000, help="size of each object")
    args = parser.parse_args(argv)
    data = os.urandom(args.bytes)
    stores: dict[str, S3Store] = {}
    pids: dict[str, int] = {}
    for name, url in args.server:
        pid = listening_pid(urlsplit(url).port or 80)
        if pid is None:
            parser.error(f"{name}: nothing listens on {url}")
        pids[name] = pid
        stores[name] = bucket_store(url)
        for number in range(20):  # warm up: connections, the server's caches
            obstore.put(stores[name], f"warm/{number}", data, use_multipart=False)
            obstore.get(stores[name], f"warm/{number}").bytes()
    keys: dict[str, list[str]] = {name: [] for name in stores}
    server_ms = {name: dict.fromkeys(OPS, 0.0) for name in stores}
    client_ms = {name: dict.fromkeys(OPS, 0.0) for name in stores}

    def timed(name: str, op: str, batch: list[str], call: Callable[[str], object]) -> None:
        before = usage(tree(pids[name])).cpu_seconds
        started = time.process_time()
        for key in batch:
            call(key)
        client_ms[name][op] += (time.process_time() - started) * 1000 / args.count
        server_ms[name][op] += (usage(tree(pids[name])).cpu_seconds - before) * 1000 / args.count

    def calls(store: S3Store) -> dict[str, Callable[[str], object]]:
        return {
            "put": lambda key: obstore.put(store, key, data, use_multipart=False),
            "get": lambda key: obstore.get(store, key).bytes(),
            "head": lambda key: obstore.head(store, key),
            "delete": lambda key: obstore.delete(store, key),
        }

    per_round = args.count // args.rounds
    for _ in range(args.rounds):
        for name, store in stores.items():
            batch = [f"jobs/{secrets.token_hex(16)}/input" for _ in range(per_round)]
            keys[name] += batch
            for op in ("put", "get", "head"):
                timed(name, op, batch, calls(store)[op])
    for name, store in stores.items():
        timed(name, "delete", keys[name], calls(store)["delete"])
    report: dict[str, object] = {"objects": per_round * args.rounds, "bytes": args.bytes}
    for name in stores:
        for op in OPS:
            report[f"{name}_server_cpu_ms_{op}"] = round(server_ms[name][op], 3)
        for op in OPS:
            report[f"{name}_client_cpu_ms_{op}"] = round(client_ms[name][op], 3)
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
