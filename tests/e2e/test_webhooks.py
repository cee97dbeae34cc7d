"""Webhooks from real worker processes to hostile receivers: huge replies, dripping ones."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from rq import Queue
from rq.job import Job as RQJob
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from shared import callbacks, names
from tests import images
from tests.receivers import hostile
from tests.redis_servers import DatabasePool
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
SECRET = "s3cret-for-tests"


@pytest.fixture(scope="module")
def hook_stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real processes, webhooks on (private receivers allowed), one compression worker."""
    yield from running_stack(
        redis_databases,
        tmp_path_factory.mktemp("webhooks"),
        webhook_secret=SECRET,
        webhook_allow_private=True,
        webhook_workers=4,
    )


def deliveries(stack: Stack) -> list[RQJob]:
    """RQ's record of every webhook delivery that has ended."""
    with redis.Redis.from_url(stack.settings.redis_url) as connection:
        queue = Queue(names.WEBHOOK_QUEUE, connection=connection)
        ids = FinishedJobRegistry(queue=queue).get_job_ids() + FailedJobRegistry(queue=queue).get_job_ids()
        return [RQJob.fetch(job_id, connection=connection) for job_id in ids]


def test_a_huge_reply_is_never_read(hook_stack: Stack) -> None:
    before = max(hook_stack.children_rss_kib("webhook-worker"))
    with hostile("huge", size=512 * MIB) as receiver, httpx.Client(base_url=hook_stack.url) as http:
        answer = http.post(
            "/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data={"callback_url": receiver.url}
        )
        assert answer.status_code == 202
        assert eventually(lambda: bool(receiver.sent), 60)
    # Only what the kernel's socket buffers took before the worker hung up.
    assert receiver.sent[0] < 64 * MIB
    assert max(hook_stack.children_rss_kib("webhook-worker")) - before < 64 * 1024


def test_dripping_receivers_delay_no_image_and_are_cut_at_the_deadline(hook_stack: Stack) -> None:
    with hostile("drip") as receiver, httpx.Client(base_url=hook_stack.url, timeout=60) as http:
        for _ in range(8):
            fields = {"callback_url": receiver.url}
            assert (
                http.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data=fields).status_code
                == 202
            )
        for _ in range(4):
            began = time.monotonic()
            answer = http.post("/v1/jobs?wait=30", files={"file": ("a.jpg", images.jpeg())})
            assert answer.json()["status"] == "finished"
            # Generous: a compression worker held by a receiver made this 15 s.
            assert time.monotonic() - began < 5
        assert eventually(lambda: len(receiver.held) == 8, 90)
    # Each delivery ended at its own deadline, not at RQ's job timeout.
    assert all(held < callbacks.TIMEOUT_SECONDS + 1 for held in receiver.held)
    outcomes = [job.return_value() for job in deliveries(hook_stack)]
    assert outcomes.count({"status": "timeout"}) == 8
