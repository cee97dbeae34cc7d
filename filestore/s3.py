"""Job files in an S3-compatible bucket (IMGPRESS_STORAGE_URL=s3://bucket/prefix) through boto3;
botocore's errors become imgpress errors in `translated()` only."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filestore import blobs
from filestore.blobs import Kind, Readable
from filestore.presigned import FULL_CODES, Transfers
from shared import storage
from shared.errors import StorageFull, StorageUnavailable
from shared.settings import SettingsError

try:
    import boto3
    import boto3.exceptions
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # pragma: no cover - the message is the point
    raise SettingsError(
        "IMGPRESS_STORAGE_URL names an S3 bucket, but boto3 is not installed: "
        "pip install '.[s3]' in the checkout"
    ) from None

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("imgpress.storage")

#: Files up to this size are sent in one PUT; larger ones in parts of this size (S3's minimum is 5 MiB).
PART_BYTES = 8 * 1024 * 1024
#: Bytes copied at a time between the bucket and a local file or a response.
CHUNK_BYTES = 256 * 1024
#: Lifetime of a presigned download URL (IMGPRESS_S3_PRESIGN), in seconds.
PRESIGN_SECONDS = 300
#: Keys listed per request while the sweep looks for orphans (S3's own maximum).
LIST_PAGE = 1000
#: Lifetime of the URLs the service presigns for its own requests, in seconds.
REQUEST_SECONDS = 60
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn botocore's and boto3's errors into StorageFull, StorageUnavailable or FileNotFoundError."""
    try:
        yield
    except ClientError as exc:
        error: dict[str, Any] = dict(exc.response.get("Error", {}))
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _MISSING_CODES:
            raise FileNotFoundError(code) from None
        if code in FULL_CODES or status == 507:
            raise StorageFull() from None
        log.warning("the bucket refused a request: %s", exc)
        raise StorageUnavailable() from None
    except boto3.exceptions.Boto3Error as exc:
        # s3transfer wraps the server's answer in text: "... An error occurred (Code) ...".
        if any(f"({code})" in str(exc) for code in FULL_CODES):
            raise StorageFull() from None
        log.warning("the bucket could not be used: %s", exc)
        raise StorageUnavailable() from None
    except BotoCoreError as exc:
        log.warning("the bucket cannot be reached: %s", exc)
        raise StorageUnavailable() from None


def client() -> S3Client:
    """An S3 client configured from the AWS variables; path-style addressing when an endpoint
    (MinIO, Ceph, Garage, a test server) is given."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=3,
        read_timeout=30,
        max_pool_connections=64,
        # Every call's parameters are built here, from job ids: checking them again costs CPU.
        parameter_validation=False,
        # Checksums only where S3 requires them: many S3-compatible servers reject the rest.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint or None, config=config)


class S3Blobs:
    """Job files as objects `{prefix}/jobs/{id}/input|output` in one bucket."""

    def __init__(self, s3: S3Client, bucket: str, prefix: str, data_dir: Path, presign: bool) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        #: Temp files (downloads for the worker, uploads being checked) stay on this host.
        self.data_dir = data_dir
        self.presign = presign
        # Parts go one after another from the calling thread: no pool of threads (each with its
        # own malloc arena) per process, and one large upload cannot take many connections.
        self.transfer = TransferConfig(
            multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, use_threads=False
        )
        self.transfers = Transfers()

    @classmethod
    def from_url(cls, url: str, data_dir: Path, presign: bool) -> S3Blobs:
        """The store an `s3://bucket/prefix` URL names."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(client(), bucket, prefix, data_dir, presign)

    def key(self, job_id: str, kind: Kind) -> str:
        """The object key of a job's file; ValueError for anything that is not a job id."""
        if not storage.is_job_id(job_id):
            raise ValueError("not a job id")
        return f"{self.prefix}jobs/{job_id}/{kind}"

    def publish(self, temp: Path, job_id: str, kind: Kind) -> None:
        key = self.key(job_id, kind)
        try:
            if temp.stat().st_size <= PART_BYTES:
                self.transfers.put(self._signed("put_object", key), temp)
            else:
                with translated():
                    self.s3.upload_file(str(temp), self.bucket, key, Config=self.transfer)
        finally:
            temp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def local_copy(self, job_id: str, kind: Kind) -> Iterator[Path]:
        body, _ = self.open(job_id, kind)
        temp = storage.temp_path(self.data_dir)
        try:
            with contextlib.closing(body), translated():
                with os.fdopen(storage.create_private(temp), "wb") as file:
                    shutil.copyfileobj(body, file, CHUNK_BYTES)
            yield temp
        finally:
            temp.unlink(missing_ok=True)

    def local_path(self, job_id: str, kind: Kind) -> Path | None:
        return None

    def open(self, job_id: str, kind: Kind) -> tuple[Readable, int]:
        return self.transfers.get(self._signed("get_object", self.key(job_id, kind)))

    def _signed(self, operation: str, key: str) -> str:
        """A short-lived URL for one of the service's own requests (signing needs no network)."""
        with translated():
            return self.s3.generate_presigned_url(
                operation, Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=REQUEST_SECONDS
            )

    def link(self, job_id: str, kind: Kind, media_type: str, disposition: str) -> str | None:
        if not self.presign:
            return None
        params = {
            "Bucket": self.bucket,
            "Key": self.key(job_id, kind),
            "ResponseContentType": media_type,
            "ResponseContentDisposition": disposition,
        }
        with translated():
            return self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_SECONDS)

    def exists(self, job_id: str, kind: Kind) -> bool:
        try:
            with translated():
                self.s3.head_object(Bucket=self.bucket, Key=self.key(job_id, kind))
        except FileNotFoundError:
            return False
        return True

    def delete(self, job_id: str) -> None:
        objects: Any = [{"Key": self.key(job_id, kind)} for kind in blobs.KINDS]
        with translated():
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def stale_jobs(self, cutoff: float) -> Iterator[str]:
        jobs_prefix = f"{self.prefix}jobs/"
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=jobs_prefix, PaginationConfig={"PageSize": LIST_PAGE}
        )
        before = datetime.fromtimestamp(cutoff, UTC)
        last = ""
        with translated():
            for page in pages:
                for item in page.get("Contents", []):
                    job_id = item["Key"].removeprefix(jobs_prefix).split("/", 1)[0]
                    if job_id != last and storage.is_job_id(job_id) and item["LastModified"] < before:
                        last = job_id
                        yield job_id

    def clean_partial(self, cutoff: float) -> int:
        # A failed multipart upload is aborted by boto3 itself; one left by a process that died
        # is the bucket's lifecycle rule's (AbortIncompleteMultipartUpload), not the sweep's: some
        # S3 servers misdate uploads in progress, and aborting a live one loses its job.
        return blobs.clean_temp_files(self.data_dir, cutoff)
