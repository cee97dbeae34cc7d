"""The API and worker with job files in an S3 bucket (rclone's S3 server, a real HTTP endpoint)."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis
from PIL import Image
from rq import Queue
from starlette.testclient import TestClient

from shared import names, storage
from shared.settings import Settings
from tests import images
from tests.files import leftover_files
from tests.ports import free_port
from tests.s3_servers import object_keys, s3_client
from tests.stack import eventually
from worker import pipeline

RunJobs = Callable[[], None]


@pytest.fixture
def settings(settings: Settings, s3_bucket: str) -> Settings:
    """The usual test settings, with job files in a fresh bucket under a prefix."""
    return replace(settings, storage_url=f"s3://{s3_bucket}/imgpress")


def upload(client: TestClient, name: str = "a.jpg") -> str:
    response = client.post("/v1/jobs", files={"file": (name, images.jpeg())})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_files_live_in_the_bucket_and_come_back_through_the_api(
    client: TestClient, settings: Settings, s3_endpoint: str, s3_bucket: str, run_jobs: RunJobs
) -> None:
    job_id = upload(client, 'cafe\u0301 "quoted" ' + "x" * 200 + ".jpg")
    assert object_keys(s3_endpoint, s3_bucket) == [f"imgpress/jobs/{job_id}/input"]
    run_jobs()
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "finished"
    assert sorted(object_keys(s3_endpoint, s3_bucket)) == [
        f"imgpress/jobs/{job_id}/input",
        f"imgpress/jobs/{job_id}/output",
    ]
    result = client.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "image/jpeg"
    assert int(result.headers["content-length"]) == len(result.content)
    assert "filename*=UTF-8''caf%C3%A9" in result.headers["content-disposition"]
    assert Image.open(io.BytesIO(result.content)).size == Image.open(io.BytesIO(images.jpeg())).size
    again = client.get(f"/v1/jobs/{job_id}/result", headers={"if-none-match": result.headers["etag"]})
    assert again.status_code == 304
    original = client.get(f"/v1/jobs/{job_id}/input")
    assert original.status_code == 200 and original.content == images.jpeg()
    # Nothing but the temp folders stays on the API's or the worker's disk.
    assert leftover_files(settings) == []
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert object_keys(s3_endpoint, s3_bucket) == []
    assert client.get(f"/v1/jobs/{job_id}/result").status_code == 410


def upload_waiting(
    client: TestClient, connection: redis.Redis, accept: str, count: int = 1, wait: float = 20
) -> tuple[list[threading.Thread], list[httpx.Response]]:
    """Photos uploaded with ?wait=, each from a thread of its own, once their jobs are queued;
    the answers land in the list as the threads end."""
    answers: list[httpx.Response] = []
    headers = {"content-type": "image/jpeg", "accept": accept}

    def send() -> None:
        answers.append(client.post(f"/v1/jobs?wait={wait}", content=images.jpeg(), headers=headers))

    threads = [threading.Thread(target=send, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    assert eventually(lambda: len(Queue(names.QUEUE, connection=connection)) == count, 10)
    return threads, answers


@pytest.mark.parametrize("accept", ["image/*", "application/json"])
def test_a_waited_small_upload_goes_through_redis_besides_the_bucket(
    accept: str,
    client: TestClient,
    connection: redis.Redis,
    s3_endpoint: str,
    s3_bucket: str,
    run_jobs: RunJobs,
) -> None:
    [waiting], answers = upload_waiting(client, connection, accept)
    [carried] = connection.keys("imgpress:carried:*")
    job_id = carried.decode().split(":")[2]
    assert carried.decode() == names.carried_key(job_id, "input")
    assert connection.get(carried) == images.jpeg() and 0 < connection.ttl(carried) <= 20
    # The bucket keeps the upload too; the worker takes it from Redis: without the bucket's copy.
    assert object_keys(s3_endpoint, s3_bucket) == [f"imgpress/jobs/{job_id}/input"]
    s3_client(s3_endpoint).delete_object(Bucket=s3_bucket, Key=f"imgpress/jobs/{job_id}/input")
    run_jobs()
    waiting.join(30)
    [answer] = answers
    output = s3_client(s3_endpoint).get_object(Bucket=s3_bucket, Key=f"imgpress/jobs/{job_id}/output")
    if accept == "image/*":
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert answer.content == output["Body"].read()
        assert answer.headers["etag"] and "attachment" in answer.headers["content-disposition"]
    else:
        assert answer.status_code == 200 and answer.json()["status"] == "finished"
    # The waiting request took the output's bytes; a client waiting for JSON gets none sent.
    assert connection.keys("imgpress:carried:*") == []


def test_a_waited_job_deleted_before_it_runs_leaves_no_bytes_in_redis(
    client: TestClient, connection: redis.Redis, s3_endpoint: str, s3_bucket: str, run_jobs: RunJobs
) -> None:
    [waiting], answers = upload_waiting(client, connection, "image/*")
    [carried] = connection.keys("imgpress:carried:*")
    assert client.delete(f"/v1/jobs/{carried.decode().split(':')[2]}").status_code == 204
    waiting.join(30)
    assert answers[0].status_code == 410
    run_jobs()
    assert connection.keys("imgpress:carried:*") == [] and object_keys(s3_endpoint, s3_bucket) == []


def test_an_api_process_carries_a_bounded_number_of_waiting_uploads(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(names, "CARRY_MAX_WAITING", 2)
    threads, answers = upload_waiting(client, connection, "image/*", count=3)
    assert len(connection.keys("imgpress:carried:*")) == 2
    run_jobs()
    for thread in threads:
        thread.join(30)
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert all(answer.headers["content-type"] == "image/jpeg" for answer in answers)
    assert connection.keys("imgpress:carried:*") == []


def test_a_client_that_stopped_waiting_before_its_job_ran_is_sent_no_output(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs
) -> None:
    headers = {"content-type": "image/jpeg", "accept": "image/*"}
    answer = client.post("/v1/jobs?wait=1", content=images.jpeg(), headers=headers)
    assert answer.status_code == 202
    # The upload stays in Redis as long as its client waits, then the job reads the bucket's copy.
    assert eventually(lambda: connection.keys("imgpress:carried:*") == [], 5)
    run_jobs()
    assert client.get(f"/v1/jobs/{answer.json()['id']}").json()["status"] == "finished"
    assert connection.keys("imgpress:carried:*") == []


def test_a_carried_job_is_queued_with_the_arguments_workers_of_the_last_release_take(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs
) -> None:
    [waiting], answers = upload_waiting(client, connection, "image/*")
    [queued] = Queue(names.QUEUE, connection=connection).get_jobs()
    run_jobs()
    waiting.join(30)
    assert answers[0].status_code == 200 and answers[0].headers["content-type"] == "image/jpeg"
    # compress(job_id, record) is all an older worker takes: a third argument would fail the job
    # there (TypeError) until the sweep queued it again; what is carried goes in the job's meta.
    assert queued.args == (queued.id, queued.args[1])
    assert queued.meta["carried"] == "input,output" and queued.meta["carried_until"] > time.time() - 30


def test_a_job_that_ends_after_its_client_stopped_waiting_sends_no_output_back(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    encode = pipeline.encode

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2)
        return encode(*args, **kwargs)

    monkeypatch.setattr(pipeline, "encode", slow)
    [waiting], answers = upload_waiting(client, connection, "image/*", wait=1)
    run_jobs()  # it takes the upload from Redis within the wait, and ends after it
    waiting.join(30)
    assert answers[0].status_code == 202
    assert client.get(f"/v1/jobs/{answers[0].json()['id']}").json()["status"] == "finished"
    assert connection.keys("imgpress:carried:*") == []


def test_uploads_nobody_waits_for_and_large_ones_go_through_the_bucket_only(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs
) -> None:
    job_id = upload(client)
    noise = Image.merge("RGB", [Image.effect_noise((720, 480), 80) for _ in range(3)])
    large = images.encode(noise, "PNG")
    assert len(large) > names.CARRY_MAX_BYTES
    waited = client.post("/v1/jobs?wait=0.1", content=large, headers={"content-type": "image/png"})
    assert waited.status_code == 202 and connection.keys("imgpress:carried:*") == []
    run_jobs()
    for finished in (job_id, waited.json()["id"]):
        assert client.get(f"/v1/jobs/{finished}").json()["status"] == "finished"


def test_a_variant_copies_the_upload_inside_the_bucket(
    client: TestClient, s3_endpoint: str, s3_bucket: str, run_jobs: RunJobs
) -> None:
    first = upload(client, "photo.jpg")
    run_jobs()
    response = client.post(f"/v1/jobs/{first}/variants", data={"quality": "20", "format": "webp"})
    assert response.status_code == 202, response.text
    variant = response.json()["id"]
    assert f"imgpress/jobs/{variant}/input" in object_keys(s3_endpoint, s3_bucket)
    # Either may go first: each job has its own copy of the upload.
    assert client.delete(f"/v1/jobs/{first}").status_code == 204
    run_jobs()
    done = client.get(f"/v1/jobs/{variant}").json()
    assert done["status"] == "finished" and done["output"]["format"] == "webp"
    assert client.get(f"/v1/jobs/{variant}/input").content == images.jpeg()
    assert client.post(f"/v1/jobs/{first}/variants").status_code == 410
    assert client.delete(f"/v1/jobs/{variant}").status_code == 204
    assert object_keys(s3_endpoint, s3_bucket) == []


def test_a_batch_archive_streams_from_the_bucket(
    client: TestClient, s3_endpoint: str, s3_bucket: str, run_jobs: RunJobs
) -> None:
    files = [("file", (f"p{n}.jpg", images.jpeg())) for n in range(3)]
    batch = client.post("/v1/batches", files=files)
    assert batch.status_code == 202, batch.text
    run_jobs()
    archive = client.get(f"/v1/batches/{batch.json()['id']}/archive")
    assert archive.status_code == 200
    assert sorted(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert client.delete(f"/v1/batches/{batch.json()['id']}").status_code == 204
    assert object_keys(s3_endpoint, s3_bucket) == []


def test_presigned_downloads_redirect_to_the_bucket(
    settings: Settings, s3_bucket: str, run_jobs: RunJobs
) -> None:
    from api.app import create_app

    presigning = replace(settings, s3_presign=True)
    with TestClient(create_app(presigning), raise_server_exceptions=False) as client:
        job_id = upload(client, "photo.jpg")
        run_jobs()
        for path, media_type in (("result", "image/jpeg"), ("input", "image/jpeg")):
            answer = client.get(f"/v1/jobs/{job_id}/{path}", follow_redirects=False)
            assert answer.status_code == 307 and answer.headers["cache-control"] == "no-store"
            fetched = httpx.get(answer.headers["location"])
            assert fetched.status_code == 200 and fetched.headers["content-type"] == media_type
            assert fetched.headers["content-disposition"].startswith('attachment; filename="photo')
        assert fetched.content == images.jpeg()


def test_a_waited_upload_is_answered_with_its_image_when_downloads_are_presigned(
    settings: Settings, connection: redis.Redis, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import create_app

    # One upload carried (the bound is 1), one through the bucket only: both answer the image.
    monkeypatch.setattr(names, "CARRY_MAX_WAITING", 1)
    with TestClient(create_app(replace(settings, s3_presign=True)), follow_redirects=False) as client:
        threads, answers = upload_waiting(client, connection, "image/*", count=2)
        run_jobs()
        for thread in threads:
            thread.join(30)
    assert [answer.status_code for answer in answers] == [200, 200]
    assert [answer.content for answer in answers] == [answers[0].content] * 2
    assert all(answer.headers["content-type"] == "image/jpeg" for answer in answers)


@pytest.mark.parametrize("query", ["", "?wait=5"], ids=["queued", "carried"])
def test_an_unreachable_bucket_refuses_uploads_with_503_and_queues_nothing(
    query: str, settings: Settings, connection: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import create_app

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    unreachable = replace(settings, storage_url="s3://unreachable-bucket/x")
    with TestClient(create_app(unreachable), raise_server_exceptions=False) as client:
        files = {"file": ("a.jpg", images.jpeg())}
        response = client.post(f"/v1/jobs{query}", files=files, headers={"accept": "image/*"})
    assert response.status_code == 503 and response.headers["retry-after"]
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "storage" in response.json()["error"]["message"]
    assert Queue(names.QUEUE, connection=connection).count == 0
    assert connection.keys("imgpress:job:*") + connection.keys("imgpress:carried:*") == []
    assert leftover_files(unreachable) == []


def test_the_sweep_deletes_orphaned_objects_and_keeps_live_ones(
    client: TestClient,
    settings: Settings,
    connection: redis.Redis,
    s3_endpoint: str,
    s3_bucket: str,
    run_jobs: RunJobs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from filestore import blobs
    from worker import tasks

    # The worker's retention is 1 s: objects 2 s old are past it, jobs just ended are not.
    monkeypatch.setenv("IMGPRESS_RETENTION_SECONDS", "1")
    tasks.settings.cache_clear()
    live = upload(client)
    store = blobs.store_for(settings)
    orphan = storage.new_job_id()
    for kind in ("input", "output"):
        temp = storage.temp_path(settings.data_dir)
        temp.write_bytes(b"left by a crash")
        store.publish(temp, orphan, kind)
    time.sleep(2.2)
    Queue(names.MAINTENANCE_QUEUE, connection=connection).enqueue(names.SWEEP_TASK)
    run_jobs()
    assert client.get(f"/v1/jobs/{live}").json()["status"] == "finished"
    assert sorted(object_keys(s3_endpoint, s3_bucket)) == [
        f"imgpress/jobs/{live}/input",
        f"imgpress/jobs/{live}/output",
    ]


def test_a_bucket_lost_while_jobs_wait_fails_them_and_the_sweep_carries_on(
    client: TestClient,
    settings: Settings,
    connection: redis.Redis,
    s3_endpoint: str,
    s3_bucket: str,
    run_jobs: RunJobs,
) -> None:
    job_id = upload(client)
    # The bucket goes away (as an unreachable one would answer) before the worker reads the input.
    s3 = s3_client(s3_endpoint)
    for key in object_keys(s3_endpoint, s3_bucket):
        s3.delete_object(Bucket=s3_bucket, Key=key)
    s3.delete_bucket(Bucket=s3_bucket)
    run_jobs()
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "service_unavailable"
    assert client.get(f"/v1/jobs/{job_id}/result").status_code == 422
    Queue(names.MAINTENANCE_QUEUE, connection=connection).enqueue(names.SWEEP_TASK)
    run_jobs()
    sweeps = Queue(names.MAINTENANCE_QUEUE, connection=connection).finished_job_registry.get_job_ids()
    assert len(sweeps) == 1, "the sweep ran to its end"
    assert leftover_files(settings) == []
