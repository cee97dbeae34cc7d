"""Job files in an S3-compatible bucket (IMGPRESS_STORAGE_URL=s3://bucket/prefix): obstore for the
small PUTs and every GET, boto3 for large uploads and presigned links; their errors become
imgpress errors in `translated()` only."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filestore import blobs
from filestore.blobs import Kind, Readable
from shared import storage
from shared.errors import StorageFull, StorageUnavailable
from shared.settings import SettingsError

try:
    import boto3
    import boto3.exceptions
    import obstore
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from obstore.exceptions import BaseError
    from obstore.store import S3Store
except ImportError:  # pragma: no cover - the message is the point
    raise SettingsError(
        "IMGPRESS_STORAGE_URL names an S3 bucket, but obstore or boto3 is not installed: "
        "pip install '.[s3]' in the checkout"
    ) from None

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from obstore import GetResult
    from obstore.store import ClientConfig, RetryConfig

log = logging.getLogger("imgpress.storage")

#: Files up to this size go up through obstore, which holds them in memory for the one PUT.
SMALL_BYTES = 1024 * 1024
#: Larger files go through boto3, streamed from the disk: in one PUT up to this size, above in parts
#: of this size (S3's minimum is 5 MiB), never whole in memory.
PART_BYTES = 8 * 1024 * 1024
#: Bytes copied at a time between the bucket and a local file or a response.
CHUNK_BYTES = 256 * 1024
#: Lifetime of a presigned download URL (IMGPRESS_S3_PRESIGN), in seconds.
PRESIGN_SECONDS = 300
#: Keys listed per page while the sweep looks for orphans (S3's own maximum).
LIST_PAGE = 1000
#: Error codes S3 servers answer when they cannot take more data.
FULL_CODES = frozenset({"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "InsufficientStorage"})
_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def failure(exc: Exception) -> Exception:
    """The imgpress error for one of obstore's: FileNotFoundError for a missing object, StorageFull,
    or StorageUnavailable (a missing bucket, a refusal, 5xx, no answer). Its text carries the
    server's status and XML answer."""
    text = str(exc)
    found = _CODE.search(text)
    code = found.group(1) if found else ""
    if isinstance(exc, FileNotFoundError) and code != "NoSuchBucket":
        return FileNotFoundError(code or "NotFound")
    if code in FULL_CODES or "status code: 507" in text:
        return StorageFull()
    log.warning("the bucket could not be used: %s", text.split("\n", 1)[0])
    return StorageUnavailable()


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn obstore's, botocore's and boto3's errors into FileNotFoundError, StorageFull or
    StorageUnavailable."""
    try:
        yield
    except (BaseError, FileNotFoundError) as exc:
        raise failure(exc) from None
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


def endpoint_url() -> str | None:
    """The S3 endpoint the AWS variables name (MinIO, Ceph, Garage, a test server), or None for AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def open_store(bucket: str) -> S3Store:
    """The bucket, with the endpoint and keys from the AWS variables (obstore reads them too);
    path-style addressing when an endpoint is given."""
    endpoint = endpoint_url()
    options: ClientConfig = {
        "allow_http": bool(endpoint and endpoint.startswith("http://")),
        "connect_timeout": timedelta(seconds=3),
        # A stalled bucket fails a read; a whole transfer may take as long as a slow client.
        "read_timeout": timedelta(seconds=30),
        "timeout": timedelta(minutes=30),
    }
    if bundle := os.environ.get("AWS_CA_BUNDLE"):
        options["root_certificate"] = Path(bundle).read_text()
    retries: RetryConfig = {"max_retries": 2, "retry_timeout": timedelta(seconds=10)}
    if endpoint:
        return S3Store(
            bucket,
            endpoint=endpoint,
            virtual_hosted_style_request=False,
            client_options=options,
            retry_config=retries,
        )
    return S3Store(bucket, client_options=options, retry_config=retries)


def client() -> S3Client:
    """A boto3 client configured from the AWS variables, path-style when an endpoint is given."""
    endpoint = endpoint_url()
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=3,
        read_timeout=30,
        # Checksums only where S3 requires them: many S3-compatible servers reject the rest.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


class S3Blobs:
    """Job files as objects `{prefix}/jobs/{id}/input|output` in one bucket."""

    def __init__(self, store: S3Store, bucket: str, prefix: str, data_dir: Path, presign: bool) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        #: Temp files (downloads for the worker, uploads being checked) stay on this host.
        self.data_dir = data_dir
        self.presign = presign
        # Parts go one after another from the calling thread: no pool of threads (each with its
        # own malloc arena) per process, and one large upload cannot take many connections.
        #: boto3, for large uploads and presigned links (which carry the file's name and type).
        #: Made now, at start-up: made by the first large upload, its ~14 MiB of service models
        #: would count against that upload's memory.
        self.s3: S3Client = client()
        self.transfer = TransferConfig(
            multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, use_threads=False
        )

    @classmethod
    def from_url(cls, url: str, data_dir: Path, presign: bool) -> S3Blobs:
        """The store an `s3://bucket/prefix` URL names."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(open_store(bucket), bucket, prefix, data_dir, presign)

    def key(self, job_id: str, kind: Kind) -> str:
        """The object key of a job's file; ValueError for anything that is not a job id."""
        if not storage.is_job_id(job_id):
            raise ValueError("not a job id")
        return f"{self.prefix}jobs/{job_id}/{kind}"

    def publish(self, temp: Path, job_id: str, kind: Kind) -> None:
        key = self.key(job_id, kind)
        try:
            with translated():
                if temp.stat().st_size <= SMALL_BYTES:
                    obstore.put(self.store, key, temp, use_multipart=False)
                else:
                    self.s3.upload_file(str(temp), self.bucket, key, Config=self.transfer)
        finally:
            temp.unlink(missing_ok=True)

    def save(self, data: bytes, job_id: str, kind: Kind) -> None:
        key = self.key(job_id, kind)
        with translated():
            if len(data) <= SMALL_BYTES:
                obstore.put(self.store, key, data, use_multipart=False)
            else:
                # The bytes are in memory already; boto3 sends them in parts and aborts on failure.
                self.s3.upload_fileobj(io.BytesIO(data), self.bucket, key, Config=self.transfer)

    def duplicate(self, source_id: str, job_id: str, kind: Kind) -> None:
        with translated():  # a copy inside the bucket: the bytes stay there
            obstore.copy(self.store, self.key(source_id, kind), self.key(job_id, kind))

    @contextlib.contextmanager
    def local_copy(self, job_id: str, kind: Kind) -> Iterator[Path | bytes]:
        with translated():
            found = obstore.get(self.store, self.key(job_id, kind))
            # In one call (each piece streamed is a thread hop), and kept in memory: a temp file
            # written, read back and deleted costs ~0.15 ms of CPU for a photo.
            data = bytes(found.bytes()) if found.meta["size"] <= SMALL_BYTES else None
        if data is not None:
            yield data
            return
        temp = storage.temp_path(self.data_dir)
        try:
            with translated(), os.fdopen(storage.create_private(temp), "wb") as file:
                for chunk in found.stream(CHUNK_BYTES):
                    file.write(chunk)
            yield temp
        finally:
            temp.unlink(missing_ok=True)

    def local_path(self, job_id: str, kind: Kind) -> Path | None:
        return None

    def open(self, job_id: str, kind: Kind) -> tuple[Readable, int]:
        with translated():
            found = obstore.get(self.store, self.key(job_id, kind))
        size = found.meta["size"]
        return Body(found, size), size

    def link(self, job_id: str, kind: Kind, media_type: str, disposition: str) -> str | None:
        if not self.presign:
            return None
        params = {
            "Bucket": self.bucket,
            "Key": self.key(job_id, kind),
            "ResponseContentType": media_type,
            "ResponseContentDisposition": disposition,
        }
        with translated():  # signing needs no network, but it needs credentials
            return self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_SECONDS)

    def exists(self, job_id: str, kind: Kind) -> bool:
        try:
            with translated():
                obstore.head(self.store, self.key(job_id, kind))
        except FileNotFoundError:
            return False
        return True

    def delete(self, job_id: str) -> None:
        with translated():
            obstore.delete(self.store, [self.key(job_id, kind) for kind in blobs.KINDS])

    def stale_jobs(self, cutoff: float) -> Iterator[str]:
        jobs_prefix = f"{self.prefix}jobs/"
        before = datetime.fromtimestamp(cutoff, UTC)
        last = ""
        with translated():
            for page in obstore.list(self.store, jobs_prefix, chunk_size=LIST_PAGE):
                for item in page:
                    job_id = item["path"].removeprefix(jobs_prefix).split("/", 1)[0]
                    if job_id != last and storage.is_job_id(job_id) and item["last_modified"] < before:
                        last = job_id
                        yield job_id

    def clean_partial(self, cutoff: float) -> int:
        # A failed multipart upload is aborted by boto3 itself; one left by a process that died
        # is the bucket's lifecycle rule's (AbortIncompleteMultipartUpload), not the sweep's: some
        # S3 servers misdate uploads in progress, and aborting a live one loses its job.
        return blobs.clean_temp_files(self.data_dir, cutoff)


class Body:
    """An object's body being read: whole in one call, or in the pieces obstore hands over."""

    def __init__(self, found: GetResult, size: int) -> None:
        self._found: GetResult | None = found
        self._chunks: Iterator[bytes] = iter(())
        self._held = memoryview(b"")
        self.size = size

    def read(self, size: int = -1, /) -> bytes:
        """Up to `size` bytes (the rest if negative); b"" at the end."""
        with translated():
            if size < 0:
                if self._found is not None:  # nothing read yet: the body in one call
                    data = bytes(self._found.bytes())
                    self._found = None
                    return data
                data = bytes(self._held) + b"".join(self._chunks)
                self._held = memoryview(b"")
                return data
            if self._found is not None:
                self._chunks, self._found = self._found.stream(CHUNK_BYTES), None
            if not self._held:
                self._held = memoryview(next(self._chunks, b""))
        piece, self._held = self._held[:size], self._held[size:]
        return bytes(piece)

    def close(self) -> None:
        """Drop the rest of the body (its connection is closed if it was not all read)."""
        self._found = None
        self._chunks = iter(())
        self._held = memoryview(b"")
