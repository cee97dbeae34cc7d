"""The job-file store: the same behaviour from the local folder and from a real S3 server (rclone's)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from obstore.exceptions import GenericError, PermissionDeniedError

from filestore import blobs
from filestore import s3 as blobs_s3
from filestore.blobs import Blobs, LocalBlobs
from filestore.s3 import S3Blobs
from shared import storage
from shared.errors import StorageFull, StorageUnavailable
from tests.ports import free_port
from tests.s3_servers import object_keys, refusing_proxy, s3_client


def _read(copy: Path | bytes) -> bytes:
    return copy if isinstance(copy, bytes) else copy.read_bytes()


def _temp(data_dir: Path, content: bytes) -> Path:
    storage.ensure_dirs(data_dir)
    path = storage.temp_path(data_dir)
    path.write_bytes(content)
    return path


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Blobs:
    data_dir = tmp_path / "data"
    storage.ensure_dirs(data_dir)
    if request.param == "local":
        return LocalBlobs(data_dir)
    bucket = request.getfixturevalue("s3_bucket")
    return S3Blobs.from_url(f"s3://{bucket}/some/prefix", data_dir, presign=False)


def test_a_published_file_reads_back_and_is_deleted_twice_harmlessly(store: Blobs, tmp_path: Path) -> None:
    job_id = storage.new_job_id()
    temp = _temp(tmp_path / "data", b"input bytes")
    assert not store.exists(job_id, "input")
    store.publish(temp, job_id, "input")
    assert not temp.exists()
    assert store.exists(job_id, "input") and not store.exists(job_id, "output")
    body, size = store.open(job_id, "input")
    try:
        assert size == 11 and body.read(4) + body.read() == b"input bytes"
    finally:
        body.close()
    with store.local_copy(job_id, "input") as copy:
        assert _read(copy) == b"input bytes"
    store.delete(job_id)
    store.delete(job_id)
    assert not store.exists(job_id, "input")
    with pytest.raises(FileNotFoundError):
        store.open(job_id, "input")


@pytest.mark.parametrize("size", [1000, blobs_s3.SMALL_BYTES + 1])
def test_bytes_saved_from_memory_read_back(store: Blobs, tmp_path: Path, size: int) -> None:
    job_id = storage.new_job_id()
    content = os.urandom(size)
    store.save(content, job_id, "output")
    body, stored = store.open(job_id, "output")
    try:
        assert stored == size and body.read() == content
    finally:
        body.close()
    with store.local_copy(job_id, "output") as copy:
        assert _read(copy) == content
    assert [p for p in storage.tmp_dir(tmp_path / "data").iterdir()] == []


@pytest.mark.parametrize("size", [1000, blobs_s3.SMALL_BYTES + 1])
def test_copies_made_for_the_worker_are_gone_after_use(store: Blobs, tmp_path: Path, size: int) -> None:
    job_id = storage.new_job_id()
    store.publish(_temp(tmp_path / "data", b"x" * size), job_id, "input")
    with store.local_copy(job_id, "input") as copy:
        remote = store.local_path(job_id, "input") is None
        # From a bucket, a small file comes in memory, a large one in a temp file.
        assert isinstance(copy, bytes) == (remote and size <= blobs_s3.SMALL_BYTES)
        assert len(_read(copy)) == size
    if isinstance(copy, Path) and remote:
        assert not copy.exists()
    assert [p for p in storage.tmp_dir(tmp_path / "data").iterdir()] == []


def test_stale_jobs_are_those_written_before_the_cutoff(store: Blobs, tmp_path: Path) -> None:
    ids = sorted(storage.new_job_id() for _ in range(3))
    for job_id in ids:
        store.publish(_temp(tmp_path / "data", b"i"), job_id, "input")
        store.publish(_temp(tmp_path / "data", b"o"), job_id, "output")
    assert list(store.stale_jobs(time.time() - 3600)) == []
    assert sorted(store.stale_jobs(time.time() + 3600)) == ids


def test_partial_writes_are_cleaned_after_the_cutoff(store: Blobs, tmp_path: Path) -> None:
    part = _temp(tmp_path / "data", b"half an upload")
    assert store.clean_partial(time.time() - 3600) == 0 and part.exists()
    assert store.clean_partial(time.time() + 3600) >= 1
    assert not part.exists()


def test_the_sweep_lists_the_bucket_in_pages(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs_s3, "LIST_PAGE", 2)
    store = S3Blobs.from_url(f"s3://{s3_bucket}", tmp_path, presign=False)
    ids = sorted(storage.new_job_id() for _ in range(5))
    for job_id in ids:
        store.publish(_temp(tmp_path, b"i"), job_id, "input")
        store.publish(_temp(tmp_path, b"o"), job_id, "output")
    assert sorted(store.stale_jobs(time.time() + 3600)) == ids


@pytest.mark.parametrize("parts", [False, True])
def test_a_large_file_goes_up_streamed_and_comes_back_whole(
    s3_endpoint: str, s3_root: Path, s3_bucket: str, tmp_path: Path, parts: bool
) -> None:
    store = S3Blobs.from_url(f"s3://{s3_bucket}/p", tmp_path, presign=False)
    size = blobs_s3.PART_BYTES * 2 + 12345 if parts else blobs_s3.SMALL_BYTES + 1
    content = os.urandom(size)
    job_id = storage.new_job_id()
    store.publish(_temp(tmp_path, content), job_id, "input")
    # The server logs each large upload it completes: a temp object of a PUT or of a
    # multipart upload, moved to the key.
    moved = f"Moved (server-side) to: {s3_bucket}/p/jobs/{job_id}/input"
    [line] = [line for line in (s3_root / "s3.log").read_text().splitlines() if moved in line]
    assert (".rclone_temp_multipart_" in line) is parts
    with store.local_copy(job_id, "input") as copy:
        assert isinstance(copy, Path) and copy.read_bytes() == content
    assert object_keys(s3_endpoint, s3_bucket) == [f"p/jobs/{job_id}/input"]


@pytest.mark.parametrize("way", ["publish", "save"])
def test_a_failed_multipart_upload_is_aborted(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    # The bucket refuses the second part (and every retry of it); the first one got through.
    with refusing_proxy(s3_endpoint, lambda method, path: "partNumber=2" in path) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        store = S3Blobs.from_url(f"s3://{s3_bucket}/p", tmp_path, presign=False)
        content = os.urandom(blobs_s3.PART_BYTES * 2 + 1)
        job_id = storage.new_job_id()
        temp = _temp(tmp_path, content)
        with pytest.raises(StorageUnavailable):
            if way == "publish":
                store.publish(temp, job_id, "input")
            else:
                store.save(content, job_id, "output")
    s3 = s3_client(s3_endpoint)
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert object_keys(s3_endpoint, s3_bucket) == []
    assert not temp.exists() or way == "save"


def test_the_sweep_leaves_multipart_uploads_in_progress_alone(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    store = S3Blobs.from_url(f"s3://{s3_bucket}/p", tmp_path, presign=False)
    key = store.key(storage.new_job_id(), "input")
    s3 = s3_client(s3_endpoint)
    s3.create_multipart_upload(Bucket=s3_bucket, Key=key)
    assert store.clean_partial(time.time() + 3600) == 0
    assert [upload["Key"] for upload in s3.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]] == [key]


def test_a_presigned_link_serves_the_file_with_its_name(s3_bucket: str, tmp_path: Path) -> None:
    store = S3Blobs.from_url(f"s3://{s3_bucket}", tmp_path, presign=True)
    job_id = storage.new_job_id()
    store.publish(_temp(tmp_path, b"\x89PNG result"), job_id, "output")
    link = store.link(job_id, "output", "image/png", 'attachment; filename="cat.png"')
    assert link is not None
    answer = httpx.get(link)
    assert answer.status_code == 200 and answer.content == b"\x89PNG result"
    assert answer.headers["content-type"] == "image/png"
    assert answer.headers["content-disposition"] == 'attachment; filename="cat.png"'
    plain = S3Blobs.from_url(f"s3://{s3_bucket}", tmp_path, presign=False)
    assert plain.link(job_id, "output", "image/png", "attachment") is None


def test_an_unreachable_bucket_is_unavailable_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nothing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = S3Blobs.from_url("s3://nowhere", tmp_path, presign=False)
    temp = _temp(tmp_path, b"upload")
    with pytest.raises(StorageUnavailable):
        store.publish(temp, storage.new_job_id(), "input")
    assert not temp.exists()
    with pytest.raises(StorageUnavailable):
        store.exists(storage.new_job_id(), "input")


def test_a_missing_bucket_is_unavailable(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    store = S3Blobs.from_url("s3://no-such-bucket-here", tmp_path, presign=False)
    with pytest.raises(StorageUnavailable):
        store.publish(_temp(tmp_path, b"upload"), storage.new_job_id(), "input")
    assert object_keys(s3_endpoint, s3_bucket) == []


def _answer(status: str, body: str) -> str:
    """obstore's text for an S3 server's answer that is not a success."""
    return f"Error performing PUT http://s3/b/k - Server returned non-2xx status code: {status}: {body}"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            FileNotFoundError(_answer("404 Not Found", "<Error><Code>NoSuchKey</Code></Error>")),
            FileNotFoundError,
        ),
        (FileNotFoundError(_answer("404 Not Found", "")), FileNotFoundError),  # HEAD has no body
        (
            FileNotFoundError(_answer("404 Not Found", "<Error><Code>NoSuchBucket</Code></Error>")),
            StorageUnavailable,
        ),
        (PermissionDeniedError(_answer("403 Forbidden", "<Code>AccessDenied</Code>")), StorageUnavailable),
        (GenericError(_answer("507 Insufficient Storage", "<Code>XMinioStorageFull</Code>")), StorageFull),
        (GenericError(_answer("507 Insufficient Storage", "")), StorageFull),
        (GenericError(_answer("400 Bad Request", "<Code>EntityTooLarge</Code>")), StorageFull),
        (GenericError(_answer("503 Service Unavailable", "<Code>SlowDown</Code>")), StorageUnavailable),
        (GenericError("Generic S3 error: HTTP error: error sending request"), StorageUnavailable),
    ],
)
def test_the_buckets_answers_become_the_right_errors(error: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected), blobs_s3.translated():
        raise error


def test_the_store_follows_the_settings(settings: object, s3_bucket: str) -> None:
    from dataclasses import replace

    from shared.settings import Settings

    assert isinstance(settings, Settings)
    assert isinstance(blobs.store_for(settings), LocalBlobs)
    remote = blobs.store_for(replace(settings, storage_url=f"s3://{s3_bucket}/x"))
    assert isinstance(remote, S3Blobs) and remote.bucket == s3_bucket and remote.prefix == "x/"
    assert blobs.store_for(replace(settings, storage_url=f"s3://{s3_bucket}/x")) is remote
