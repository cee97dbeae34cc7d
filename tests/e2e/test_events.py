"""Server-Sent Events against a real uvicorn API; a burst worker moves the jobs on when each test
says, so the `queued` event can be read first."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from shared.settings import Settings
from tests import images
from tests.ports import free_port
from tests.redis_servers import DatabasePool
from tests.sse import Event, events
from tests.stack import Stack

pytestmark = pytest.mark.e2e

ORDER = ["queued", "started", "finished"]


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("events")
    with redis_databases.database() as url:
        settings = replace(
            Settings.from_env({}), redis_url=url, data_dir=root / "data", port=free_port(), max_batch_files=3
        )
        running = Stack(settings, root)
        running.start_api()
        try:
            running.wait_ready_api()
            yield running
        finally:
            running.stop()


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def upload(http: httpx.Client, data: bytes, name: str = "photo.jpg") -> str:
    response = http.post("/v1/jobs", files={"file": (name, data)})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def test_events_come_in_order_and_end_at_finished(stack: Stack, http: httpx.Client) -> None:
    job_id = upload(http, images.jpeg())
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        first = next(stream)
        assert (first.name, first.id, first.data["status"]) == ("queued", f"{job_id}:queued", "queued")
        worker = stack.start_burst_worker()
        rest: list[Event] = []
        for event in stream:
            rest.append(event)
        assert worker.wait(timeout=60) == 0
    names = ["queued"] + [event.name for event in rest]
    assert names == sorted(names, key=ORDER.index) and len(set(names)) == len(names)
    assert names[-1] == "finished"
    final = rest[-1].data
    assert final["status"] == "finished" and final["output"]["bytes"] > 0


def test_late_subscriber_gets_the_current_state_at_once(stack: Stack, http: httpx.Client) -> None:
    job_id = upload(http, images.png_with_alpha(), "logo.png")
    stack.run_worker_burst()
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        received = list(events(response))
    # One event, the current state, and the stream ends: nothing to wait for.
    assert [event.name for event in received] == ["finished"]
    assert received[0].data["id"] == job_id


def test_a_failing_job_ends_with_its_error(stack: Stack, http: httpx.Client) -> None:
    job_id = upload(http, images.jpeg()[:2500], "cut.jpg")
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        stream = events(response)
        assert next(stream).name == "queued"
        stack.run_worker_burst()
        last = list(stream)[-1]
    assert last.name == "failed"
    assert last.data["error"]["code"] == "corrupt_image"


def test_deleting_the_job_ends_its_stream(stack: Stack, http: httpx.Client) -> None:
    job_id = upload(http, images.jpeg())
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        stream = events(response)
        assert next(stream).name == "queued"
        assert http.delete(f"/v1/jobs/{job_id}").status_code == 204
        assert [(event.name, event.data) for event in stream] == [("deleted", {"id": job_id})]


def test_events_of_an_unknown_job_is_404(http: httpx.Client) -> None:
    response = http.get(f"/v1/jobs/{'0' * 32}/events")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_batch_events_report_each_job_then_the_totals(stack: Stack, http: httpx.Client) -> None:
    files = [("file", ("a.jpg", images.jpeg())), ("file", ("b.png", images.png_with_alpha()))]
    batch = http.post("/v1/batches", files=files).json()
    ids = [job["id"] for job in batch["jobs"]]
    with http.stream("GET", f"/v1/batches/{batch['id']}/events") as response:
        stream = events(response)
        first = [next(stream) for _ in range(3)]
        assert [(e.name, e.data["id"], e.data["status"]) for e in first[:2]] == [
            ("job", ids[0], "queued"),
            ("job", ids[1], "queued"),
        ]
        assert first[2].name == "batch" and first[2].data["counts"]["queued"] == 2
        worker = stack.start_burst_worker()
        rest = list(stream)
        assert worker.wait(timeout=60) == 0
    for job_id in ids:
        statuses = [e.data["status"] for e in first + rest if e.name == "job" and e.data["id"] == job_id]
        assert statuses == sorted(statuses, key=ORDER.index) and statuses[-1] == "finished"
    assert rest[-1].name == "batch"
    assert rest[-1].data["status"] == "finished" and rest[-1].data["counts"]["finished"] == 2


def test_files_past_the_batch_limit_are_refused_alone(http: httpx.Client) -> None:
    files = [("file", (f"{n}.jpg", images.jpeg())) for n in range(4)]
    batch = http.post("/v1/batches", files=files).json()
    assert [job["index"] for job in batch["jobs"]] == [0, 1, 2]
    assert [(r["index"], r["error"]["code"]) for r in batch["rejected"]] == [(3, "too_large")]


async def follow(
    client: httpx.AsyncClient, url: str, opened: asyncio.Event, count: list[int]
) -> tuple[int, str]:
    """Open one stream; (status, the last event's name or the error body's code)."""
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, response.json()["error"]["code"]
        last = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                last = line.partition(":")[2].strip()
                count[0] += 1
                if count[0] == STREAMS:
                    opened.set()
        return 200, last


STREAMS = 500


@pytest.mark.heavy
def test_five_hundred_streams_all_open_and_all_end(stack: Stack, http: httpx.Client) -> None:
    job_id = upload(http, images.jpeg())

    async def run() -> list[tuple[int, str] | BaseException]:
        opened, count = asyncio.Event(), [0]
        limits = httpx.Limits(max_connections=STREAMS + 10)
        async with httpx.AsyncClient(base_url=stack.url, limits=limits, timeout=60) as client:
            url = f"/v1/jobs/{job_id}/events"
            tasks = [asyncio.create_task(follow(client, url, opened, count)) for _ in range(STREAMS)]
            # Every stream is open (or was refused) before the job goes: all of them wake at once.
            await asyncio.wait(
                [asyncio.ensure_future(opened.wait()), *tasks],
                timeout=60,
                return_when=asyncio.FIRST_COMPLETED,
            )
            await asyncio.sleep(1)
            assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
            return list(await asyncio.gather(*tasks, return_exceptions=True))

    outcomes = asyncio.run(run())
    refused = [o for o in outcomes if isinstance(o, tuple) and o[0] != 200]
    broken = [o for o in outcomes if not isinstance(o, tuple) or (o[0] == 200 and o[1] != "deleted")]
    print(f"\n{STREAMS} streams: {len(refused)} refused, {len(broken)} died before their end")
    assert not refused and not broken
