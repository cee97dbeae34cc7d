"""The worker class imgpress runs: RQ's bookkeeping kept whole, in fewer round trips than stock RQ."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue, get_current_job
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from rq.suspension import resume, suspend
from rq.worker import BaseWorker, SimpleWorker
from starlette.testclient import TestClient

from shared import names, storage
from shared.settings import Settings
from tests import images
from tests.ports import free_port
from tests.redis_servers import start_redis
from worker.rqworker import ImgpressWorker


def run_one(
    client: TestClient, connection: redis.Redis, worker_class: type[BaseWorker]
) -> tuple[str, dict[str, int]]:
    """Upload one image, run it with `worker_class`; its id and the Redis commands the run sent, by name."""
    answer = client.post("/v1/jobs", content=images.jpeg(), headers={"content-type": "image/jpeg"})
    assert answer.status_code == 202
    before = connection.info("commandstats")
    worker = worker_class(list(names.WORKER_QUEUES), connection=connection)
    worker.work(burst=True, logging_level="WARNING")
    after = connection.info("commandstats")
    sent = {
        name.removeprefix("cmdstat_"): stats["calls"] - before.get(name, {}).get("calls", 0)
        for name, stats in after.items()
    }
    assert client.get(f"/v1/jobs/{answer.json()['id']}").json()["status"] == "finished"
    return answer.json()["id"], sent


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis server of each test's own here: commandstats counts the commands of every client."""
    port = free_port()
    server = start_redis(port, tmp_path / "redis")
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=10)


@pytest.mark.usefixtures("quick_stock_listener")
def test_imgpress_worker_keeps_rq_state_in_fewer_transactions(
    client: TestClient, connection: redis.Redis, run_jobs: object
) -> None:
    # run_jobs sets the worker's environment; the workers here are built by hand to compare.
    _, stock = run_one(client, connection, SimpleWorker)
    job_id, ours = run_one(client, connection, ImgpressWorker)

    # Everything RQ, `rq info` and rq-dashboard read is still written.
    ran = RQJob.fetch(job_id, connection=connection)
    assert ran.get_status() is RQStatus.FINISHED and ran.worker_name and ran.started_at and ran.ended_at
    assert ran.return_value() == {"status": "finished", "bytes": ran.return_value()["bytes"]}
    assert job_id in FinishedJobRegistry(names.QUEUE, connection=connection).get_job_ids()
    assert StartedJobRegistry(names.QUEUE, connection=connection).get_job_ids() == []

    # One transaction fewer to prepare a job, no read of its dependents before its success is
    # recorded, and fewer round trips for the heartbeats.
    # (and the compression job's own first transaction carries RQ's preparation: worker.handoff).
    assert ours.get("exec", 0) <= stock.get("exec", 0) - 2
    assert stock.get("watch", 0) >= 1 and ours.get("watch", 0) == 0
    assert ours.get("smembers", 0) < stock.get("smembers", 0)  # the others: RQ cleaning at start-up
    assert sum(ours.values()) < sum(stock.values())


def answer() -> str:
    """A job that succeeds."""
    return "done"


def test_jobs_that_wait_for_a_finished_job_still_run(connection: redis.Redis, run_jobs: object) -> None:
    queue = Queue(names.QUEUE, connection=connection)
    first = queue.enqueue(answer)
    then = queue.enqueue(answer, depends_on=first)
    assert then.get_status() is RQStatus.DEFERRED
    ImgpressWorker(list(names.WORKER_QUEUES), connection=connection).work(burst=True, logging_level="WARNING")
    assert first.get_status() is RQStatus.FINISHED
    assert then.get_status() is RQStatus.FINISHED and then.return_value() == "done"


def test_a_burst_worker_leaves_no_stop_signal_ignored(connection: redis.Redis) -> None:
    """Ignored signals outlive exec: a process that ran a worker must not pass on SIG_IGN."""
    ImgpressWorker(list(names.WORKER_QUEUES), connection=connection).work(burst=True, logging_level="WARNING")
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
    child = subprocess.run(
        [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "True"


def suspend_workers() -> None:
    """A job that runs `rq suspend` (what an operator would, from outside)."""
    job = get_current_job()
    assert job is not None
    suspend(job.connection)


def test_suspension_still_stops_the_worker_between_jobs(
    client: TestClient, connection: redis.Redis, run_jobs: object
) -> None:
    Queue(names.QUEUE, connection=connection).enqueue(suspend_workers)
    answer = client.post("/v1/jobs", content=images.jpeg(), headers={"content-type": "image/jpeg"})
    ImgpressWorker(list(names.WORKER_QUEUES), connection=connection).work(burst=True, logging_level="WARNING")
    # Suspended after the first job: the upload is still waiting, as with stock RQ.
    assert client.get(f"/v1/jobs/{answer.json()['id']}").json()["status"] == "queued"
    resume(connection)
    ImgpressWorker(list(names.WORKER_QUEUES), connection=connection).work(burst=True, logging_level="WARNING")
    assert client.get(f"/v1/jobs/{answer.json()['id']}").json()["status"] == "finished"


def run_until_empty(connection: redis.Redis) -> None:
    ImgpressWorker(list(names.WORKER_QUEUES), connection=connection).work(burst=True, logging_level="WARNING")


def test_a_job_deleted_as_it_starts_ends_and_leaves_nothing_in_rq(
    client: TestClient, connection: redis.Redis, settings: Settings, run_jobs: object
) -> None:
    job_id = client.post("/v1/jobs", content=images.jpeg(), headers={"content-type": "image/jpeg"}).json()[
        "id"
    ]
    # The record goes as a DELETE would remove it once a worker has dequeued the job.
    connection.delete(names.job_key(job_id))
    # Queued in the older form (no record with the task), which reads the record first and
    # so returns before taking the transaction the worker left open for it.
    older = Queue(names.QUEUE, connection=connection).enqueue(names.COMPRESS_TASK, "0" * 32)
    run_until_empty(connection)
    # RQ's copy of a deleted job (its arguments hold the record) goes when the run ends.
    for ident in (job_id, older.id):
        assert not connection.exists(RQJob.key_for(ident))
        assert ident not in FinishedJobRegistry(names.QUEUE, connection=connection)
    assert StartedJobRegistry(names.QUEUE, connection=connection).get_job_ids() == []
    assert not connection.exists(names.job_key(job_id))  # not brought back by the start
    # The image was encoded while the start was in flight; what that wrote is gone too.
    assert not storage.job_dir(settings.data_dir, job_id).exists()


def test_the_worker_class_brings_the_pipeline_before_the_pool_forks() -> None:
    # `rq worker-pool` imports the worker class, then forks its workers: the tasks module and
    # the codecs must come with the class, or each worker's first job pays for importing them.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, worker.rqworker; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for module in ("worker.tasks", "worker.pipeline", "worker.codecs", "PIL.Image"):
        assert f"'{module}'" in loaded


def test_rq_private_names_are_used_only_for_the_rq_they_were_read_from() -> None:
    from worker import rqprivate

    rqprivate.check_version("3.0.7")
    with pytest.raises(ImportError, match=r"written for RQ 3\.0 and RQ 3\.1\.0 is installed"):
        rqprivate.check_version("3.1.0")
    # Nowhere else in the worker touches an attribute of RQ's objects that starts with "_".
    for path in Path(rqprivate.__file__).parent.glob("*.py"):
        if path.name != "rqprivate.py":
            assert not re.search(r"\b(job|worker|execution)\._[a-z]", path.read_text()), path
