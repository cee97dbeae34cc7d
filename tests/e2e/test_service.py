"""End to end against the real processes (API, worker pool, scheduler) on real Redis."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from shared import storage
from shared.settings import Settings
from tests import images
from tests.redis_servers import DatabasePool
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.e2e

RETENTION = 3


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(
        redis_databases,
        tmp_path_factory.mktemp("e2e"),
        max_upload_bytes=8 * 1024 * 1024,
        retention_seconds=RETENTION,
        sweep_interval_seconds=1,
    )


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def wait_for_end(http: httpx.Client, job_id: str) -> dict:
    job = http.get(f"/v1/jobs/{job_id}", params={"wait": 20}).json()
    assert job["status"] in ("finished", "failed")
    return job


def files_of(settings: Settings, job_id: str) -> list[Path]:
    folder = storage.job_dir(settings.data_dir, job_id)
    return sorted(folder.iterdir()) if folder.exists() else []


def test_multipart_upload_to_download_then_expiry(stack: Stack, http: httpx.Client) -> None:
    original = images.jpeg()
    response = http.post(
        "/v1/jobs", files={"file": ("photo.jpg", original, "image/jpeg")}, data={"quality": "70"}
    )
    assert response.status_code == 202
    job_id = response.json()["id"]
    job = wait_for_end(http, job_id)
    assert job["status"] == "finished"
    result = http.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 200
    assert len(result.content) < len(original)
    with Image.open(io.BytesIO(result.content)) as image:
        image.load()
        assert image.format == "JPEG" and image.size == (320, 240)
    assert files_of(stack.settings, job_id)
    # rq-scheduler runs the expiry RETENTION seconds after the job finished.
    assert eventually(lambda: http.get(f"/v1/jobs/{job_id}").status_code == 410)
    assert files_of(stack.settings, job_id) == []
    assert http.get(f"/v1/jobs/{job_id}/result").status_code == 410


def test_raw_upload_to_download(stack: Stack, http: httpx.Client) -> None:
    original = images.png_with_alpha()
    response = http.post(
        "/v1/jobs", content=original, params={"filename": "logo.png"}, headers={"content-type": "image/png"}
    )
    assert response.status_code == 202
    job = wait_for_end(http, response.json()["id"])
    assert job["status"] == "finished"
    result = http.get(f"/v1/jobs/{job['id']}/result")
    assert len(result.content) <= len(original)
    with Image.open(io.BytesIO(result.content)) as image:
        assert image.mode == "RGBA"


def test_corrupt_jpeg_fails_cleanly(stack: Stack, http: httpx.Client) -> None:
    response = http.post("/v1/jobs", files={"file": ("cut.jpg", images.jpeg()[:2500])})
    job = wait_for_end(http, response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "corrupt_image"
    assert files_of(stack.settings, job["id"]) == []
    assert stack.processes["worker"].poll() is None
    assert http.get("/readyz").status_code == 200


def test_oversized_body_is_413_without_growing_the_api(stack: Stack, http: httpx.Client) -> None:
    before = stack.rss_kib("api")
    body_mib = 64

    def body() -> Iterator[bytes]:
        yield images.jpeg()
        for _ in range(body_mib * 16):
            yield b"\0" * 65536

    # The API answers as soon as the limit is passed; httpx reads that answer even though
    # the server stops reading the rest of the body.
    response = http.post("/v1/jobs", content=body(), headers={"content-type": "image/jpeg"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    grown_mib = (stack.rss_kib("api") - before) / 1024
    assert grown_mib < body_mib / 4, f"API grew by {grown_mib:.1f} MiB for a {body_mib} MiB body"
    assert [p for p in storage.tmp_dir(stack.settings.data_dir).iterdir()] == []
    assert http.get("/healthz").status_code == 200


def test_sweep_removes_files_no_job_owns(stack: Stack) -> None:
    orphan = storage.input_path(stack.settings.data_dir, storage.new_job_id())
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left behind by a crash")
    old = time.time() - RETENTION - 60
    os.utime(orphan.parent, (old, old))
    assert eventually(lambda: not orphan.parent.exists())


def test_upload_that_accepts_an_image_is_answered_with_the_output(stack: Stack, http: httpx.Client) -> None:
    original = images.jpeg()
    answer = http.post(
        "/v1/jobs",
        params={"wait": 20, "filename": "photo.jpg"},
        content=original,
        headers={"content-type": "image/jpeg", "accept": "image/*, application/json;q=0.5"},
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    job = json.loads(answer.headers["imgpress-job"])
    assert job["status"] == "finished" and answer.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["output"]["bytes"] == len(answer.content) < len(original)
    assert 'filename="photo.jpg"' in answer.headers["content-disposition"]
    assert http.get(f"/v1/jobs/{job['id']}/result").content == answer.content
    with Image.open(io.BytesIO(answer.content)) as image:
        assert image.format == "JPEG"

    # A job that fails has no image to send: the answer is its resource, as without the header.
    failed = http.post(
        "/v1/jobs",
        params={"wait": 20},
        content=original[:2500],
        headers={"content-type": "image/jpeg", "accept": "image/*"},
    )
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    assert "imgpress-job" not in failed.headers
    # A browser's `*/*` (or no Accept at all) keeps the JSON answer.
    plain = http.post(
        "/v1/jobs",
        params={"wait": 20},
        content=original,
        headers={"content-type": "image/jpeg", "accept": "*/*"},
    )
    assert plain.json()["status"] == "finished"


def test_metrics_count_real_jobs_across_processes(stack: Stack, http: httpx.Client) -> None:
    def value(text: str, name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    before = http.get("/metrics").text
    response = http.post(
        "/v1/jobs", params={"wait": 20}, content=images.jpeg(), headers={"content-type": "image/jpeg"}
    )
    assert response.json()["status"] == "finished"
    finished = 'imgpress_jobs_total{code="",outcome="finished"}'
    # Counted in the worker process, shown by the API's scrape; the worker counts a job just
    # after announcing its end, so the waiting client may scrape first.
    assert eventually(lambda: value(http.get("/metrics").text, finished) == value(before, finished) + 1, 5)
    after = http.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert value(text, "imgpress_compress_seconds_count") > value(before, "imgpress_compress_seconds_count")
    assert value(text, "imgpress_upload_bytes_total") >= value(before, "imgpress_upload_bytes_total") + len(
        images.jpeg()
    )
    assert 'imgpress_http_requests_total{method="POST",route="/v1/jobs",status="200"}' in text
    assert 'imgpress_queue_depth{queue="imgpress"}' in text
    assert 'imgpress_rq_registry_jobs{queue="imgpress",registry="failed"}' in text


def test_request_ids_are_echoed_and_logged(stack: Stack, http: httpx.Client) -> None:
    mine = http.get("/healthz", headers={"X-Request-ID": "trace-abc.123"})
    assert mine.headers["x-request-id"] == "trace-abc.123"
    made = http.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert made != "bad id with spaces" and len(made) == 32
    lines = (stack.log_dir / "api.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    logged = [entry for entry in entries if entry.get("request_id") == "trace-abc.123"]
    assert logged and logged[0]["status"] == 200 and logged[0]["route"] == "/healthz"
    assert "ms" in logged[0]
