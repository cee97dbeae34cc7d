"""Whole-object GETs and PUTs over presigned URLs with urllib3: a quarter of the CPU of a botocore
call, for the four requests every image makes. Its answers are translated here, and only here."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import urllib3
from urllib3.exceptions import HTTPError

from shared.errors import StorageFull, StorageUnavailable

log = logging.getLogger("imgpress.storage")

#: Error codes S3 servers answer when they cannot take more data.
FULL_CODES = frozenset({"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "InsufficientStorage"})
_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
#: Connection failures and 5xx answers are tried again this many times, with a short backoff.
RETRIES = urllib3.Retry(
    total=2,
    backoff_factor=0.1,
    status_forcelist=(500, 502, 503, 504),
    allowed_methods=frozenset({"GET", "PUT"}),
    raise_on_status=False,
)


def failure(status: int, body: bytes) -> Exception:
    """The error for an S3 server's answer that is not a success: FileNotFoundError for a
    missing object, StorageFull, or StorageUnavailable (a missing bucket, a refusal, 5xx)."""
    found = _CODE.search(body)
    code = found.group(1).decode(errors="replace") if found else str(status)
    if code == "NoSuchKey" or (status == 404 and not found):
        return FileNotFoundError(code)
    if code in FULL_CODES or status == 507:
        return StorageFull()
    log.warning("the bucket refused a request: %s %s", status, code)
    return StorageUnavailable()


class Transfers:
    """A pool of HTTP connections to the S3 endpoint, for presigned requests."""

    def __init__(self) -> None:
        # botocore's own setting for a custom CA (a private MinIO, Ceph) is honoured here too.
        bundle = os.environ.get("AWS_CA_BUNDLE") or None
        self.pool = urllib3.PoolManager(
            maxsize=64,
            retries=RETRIES,
            timeout=urllib3.Timeout(connect=3, read=30),
            ca_certs=bundle,
        )

    def get(self, url: str) -> tuple[Body, int]:
        """The object at a presigned GET URL, opened, and its size."""
        try:
            response = self.pool.request("GET", url, preload_content=False)
        except HTTPError as exc:
            log.warning("the bucket cannot be reached: %s", exc)
            raise StorageUnavailable() from None
        if response.status != 200:
            body = response.read(4096)
            response.release_conn()
            raise failure(response.status, body)
        size = int(response.headers["Content-Length"])
        return Body(response, size), size

    def put(self, url: str, path: Path) -> None:
        """Send a local file to a presigned PUT URL, streamed from the disk."""
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            try:
                response = self.pool.request("PUT", url, body=file, headers={"Content-Length": str(size)})
            except HTTPError as exc:
                log.warning("the bucket cannot be reached: %s", exc)
                raise StorageUnavailable() from None
        if response.status != 200:
            raise failure(response.status, response.data[:4096])


class Body:
    """An object's body being read; the connection goes back to the pool once it is all read."""

    def __init__(self, response: urllib3.BaseHTTPResponse, size: int) -> None:
        self._response = response
        self._left = size

    def read(self, size: int = -1, /) -> bytes:
        """Up to `size` bytes (the rest if negative); b"" at the end."""
        try:
            data = self._response.read(size if size >= 0 else None)
        except HTTPError as exc:
            log.warning("the bucket stopped sending: %s", exc)
            raise StorageUnavailable() from None
        self._left -= len(data)
        return data

    def close(self) -> None:
        """Give the connection back, or close it if the body was left unread."""
        if self._left <= 0:
            self._response.release_conn()
        else:
            self._response.close()
