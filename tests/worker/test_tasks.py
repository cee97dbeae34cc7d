"""The RQ tasks, run by a real RQ worker on real Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.worker import SimpleWorker, Worker
from starlette.testclient import TestClient

from filestore import blobs
from shared import jobs, names, schedules, storage
from shared.settings import Settings
from tests import images
from worker import recovery
from worker.rqworker import ImgpressWorker

RunJobs = Callable[[], None]


def upload(client: TestClient) -> str:
    response = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())})
    assert response.status_code == 202
    return str(response.json()["id"])


@pytest.mark.usefixtures("quick_stock_listener")
@pytest.mark.parametrize("worker_class", [ImgpressWorker, SimpleWorker, Worker])
def test_finished_job_has_its_expiry_scheduled(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs, worker_class: type[Worker]
) -> None:
    # ImgpressWorker sends the expiry with its record of the outcome; under a stock worker
    # (RQ's forking one included: the job's start is sent from a thread of the forked child)
    # the task sends it itself.
    job_id = upload(client)
    worker_class(list(names.WORKER_QUEUES), connection=connection).work(burst=True, logging_level="WARNING")
    scheduled = {job.id: (job, at) for job, at in schedules._scheduler(connection).get_jobs(with_times=True)}
    assert names.SWEEP_SCHEDULE_ID in scheduled
    expiry, at = scheduled[f"expire-{job_id}"]
    assert expiry.func_name == names.EXPIRE_TASK and list(expiry.args) == [job_id]
    record = client.get(f"/v1/jobs/{job_id}").json()
    assert at.replace(tzinfo=UTC) == datetime.fromisoformat(record["expires_at"]).replace(microsecond=0)


def test_expire_task_deletes_files_and_record(
    client: TestClient, connection: redis.Redis, settings: Settings, run_jobs: RunJobs
) -> None:
    job_id = upload(client)
    run_jobs()
    Queue(names.MAINTENANCE_QUEUE, connection=connection).enqueue(names.EXPIRE_TASK, job_id)
    Queue(names.MAINTENANCE_QUEUE, connection=connection).enqueue(names.EXPIRE_TASK, job_id)
    run_jobs()
    assert not storage.job_dir(settings.data_dir, job_id).exists()
    assert not jobs.exists(connection, job_id)
    gone = client.get(f"/v1/jobs/{job_id}")
    assert gone.status_code == 410
    assert gone.json()["error"]["message"] == "This job's files were deleted after the retention period."


def test_sweep_expires_overdue_jobs_and_orphans(
    client: TestClient, connection: redis.Redis, settings: Settings, run_jobs: RunJobs
) -> None:
    job_id = upload(client)
    run_jobs()
    connection.zadd(names.EXPIRY_KEY, {job_id: time.time() - 1})  # as if its expiry was lost
    orphan = storage.input_path(settings.data_dir, storage.new_job_id())
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    stale_part = storage.temp_path(settings.data_dir)
    stale_part.write_bytes(b"half an upload")
    fresh_part = storage.temp_path(settings.data_dir)
    fresh_part.write_bytes(b"an upload in progress")
    old = time.time() - settings.retention_seconds - 5
    os.utime(orphan.parent, (old, old))
    os.utime(stale_part, (old, old))
    Queue(names.MAINTENANCE_QUEUE, connection=connection).enqueue(names.SWEEP_TASK)
    run_jobs()
    assert client.get(f"/v1/jobs/{job_id}").status_code == 410
    assert not orphan.parent.exists() and not stale_part.exists()
    assert fresh_part.exists()


def test_job_deleted_before_it_runs_is_skipped(
    client: TestClient, connection: redis.Redis, settings: Settings, run_jobs: RunJobs
) -> None:
    job_id = upload(client)
    jobs.delete(connection, blobs.store_for(settings), job_id)
    Queue(names.QUEUE, connection=connection).enqueue(names.COMPRESS_TASK, job_id)
    run_jobs()
    assert not storage.job_dir(settings.data_dir, job_id).exists()
    assert not jobs.exists(connection, job_id)


def run_sweep(connection: redis.Redis, run_jobs: RunJobs) -> None:
    Queue(names.MAINTENANCE_QUEUE, connection=connection).enqueue(names.SWEEP_TASK)
    run_jobs()


def lose_queue_entry(connection: redis.Redis, job_id: str) -> None:
    """What a worker that dies right after BLPOP leaves: the job in no queue, its record `queued`."""
    assert connection.lrem(Queue(names.QUEUE, connection=connection).key, 1, job_id) == 1


def test_sweep_queues_again_a_job_that_no_queue_holds(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs
) -> None:
    job_id = upload(client)
    lose_queue_entry(connection, job_id)
    run_sweep(connection, run_jobs)
    # Seen once: a worker may have just taken it; the next sweep decides.
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    run_sweep(connection, run_jobs)
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "finished"
    assert connection.hlen(recovery.SUSPECTS_KEY) == 0


def test_sweep_leaves_queued_jobs_in_their_queue_alone(client: TestClient, connection: redis.Redis) -> None:
    job_id = upload(client)
    for _ in range(2):
        assert recovery.unqueued(connection, time.time()) == []
    assert connection.lrange(Queue(names.QUEUE, connection=connection).key, 0, -1) == [job_id.encode()]


def test_sweep_fails_a_lost_job_whose_upload_is_gone(
    client: TestClient,
    connection: redis.Redis,
    settings: Settings,
    run_jobs: RunJobs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job_id = upload(client)
    lose_queue_entry(connection, job_id)
    storage.delete_input(settings.data_dir, job_id)
    run_sweep(connection, run_jobs)
    run_sweep(connection, run_jobs)
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["error"]["code"]) == ("failed", "worker_lost")
    assert end_records(caplog, job_id) == [("failed", "worker_lost")]


def test_sweep_fails_a_job_whose_worker_died_with_the_log_line_of_every_job_end(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs, caplog: pytest.LogCaptureFixture
) -> None:
    # What a worker killed with kill -9 mid-job leaves: the record `started`, no lease renewed.
    job_id = upload(client)
    lose_queue_entry(connection, job_id)
    with connection.pipeline() as pipe:
        jobs.stage_update(pipe, jobs.load(connection, job_id).started())
        pipe.sadd(names.STARTED_KEY, job_id)
        pipe.execute()
    run_sweep(connection, run_jobs)
    assert client.get(f"/v1/jobs/{job_id}").json()["error"]["code"] == "worker_lost"
    assert end_records(caplog, job_id) == [("failed", "worker_lost")]


def end_records(caplog: pytest.LogCaptureFixture, job_id: str) -> list[tuple[str, str]]:
    """The outcome and code of each imgpress.jobs line about the job."""
    return [
        (record.outcome, record.code)  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "imgpress.jobs" and getattr(record, "job_id", None) == job_id
    ]


def test_a_lost_sweep_schedule_is_registered_again_by_the_scheduler(
    connection: redis.Redis, settings: Settings
) -> None:
    assert schedules.ensure_sweep(connection, settings) is True  # nothing registered yet
    assert schedules.ensure_sweep(connection, settings) is False
    # Its record gone (a stall past a TTL, a restored Redis): rq-scheduler would drop it.
    connection.delete(Job.key_for(names.SWEEP_SCHEDULE_ID))
    assert schedules.ensure_sweep(connection, settings) is True
    assert connection.ttl(Job.key_for(names.SWEEP_SCHEDULE_ID)) == -1  # never expires
