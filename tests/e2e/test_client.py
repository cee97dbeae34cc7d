"""The Python client against real API processes: round trips, typed options, batches, events,
a missing file among many, a Redis outage, API keys and a wrong URL."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from imgpress import AsyncClient, Client, Result, Retry, RetryPolicy, errors
from imgpress.errors import Unauthorized, UnexpectedResponse
from imgpress.models import Event
from shared.settings import Settings
from tests import images
from tests.ports import free_port
from tests.redis_servers import DatabasePool, start_redis
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

FAST_RETRY = RetryPolicy(retries=2, backoff=0.05, max_delay=0.2)


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("client"), max_upload_bytes=1024 * 1024)


def test_compress_round_trip_and_job_calls(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(images.jpeg())
    with Client(stack.url) as imgpress:
        sent: list[httpx.Request] = []
        imgpress._http.event_hooks["request"].append(sent.append)
        result = imgpress.compress(source, quality=60)
        # One request: the upload waits for the job and answers with the output itself.
        assert [(request.method, request.url.path) for request in sent] == [("POST", "/v1/jobs")]
        assert isinstance(result, Result) and result.media_type == "image/jpeg"
        assert result.filename == "photo.jpg" and result.job.output is not None
        assert result.job.output.bytes == len(result.data)
        assert result.job.input.filename == "photo.jpg" and result.job.options["quality"] == 60
        assert 0 < len(result.data) < source.stat().st_size
        assert imgpress.status(result.job.id).status == "finished"
        assert imgpress.result(result.job.id) == result.data
        imgpress.delete(result.job.id)
        with pytest.raises(errors.JobExpired):
            imgpress.status(result.job.id)
        with pytest.raises(errors.JobNotFound):
            imgpress.result("0" * 32)


def test_a_unicode_name_comes_back_whole_and_save_keeps_the_original(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "café crème.jpg"
    source.write_bytes(images.jpeg())
    original = source.read_bytes()
    with Client(stack.url) as imgpress:
        result = imgpress.compress(source, quality=60)
        download = imgpress.download(result.job.id)
    assert result.filename == download.filename == "café crème.jpg"
    with pytest.raises(FileExistsError):
        result.save(tmp_path)
    assert source.read_bytes() == original
    small = tmp_path / "small"
    small.mkdir()
    assert result.save(small) == small / "café crème.jpg"
    assert (small / "café crème.jpg").read_bytes() == result.data


def test_server_errors_arrive_as_the_shared_tree(stack: Stack, tmp_path: Path) -> None:
    with Client(stack.url) as imgpress:
        with pytest.raises(errors.BadOption):
            imgpress.submit(images.jpeg(), quality=0)
        with pytest.raises(errors.UnsupportedMedia):
            imgpress.submit(b"%PDF-1.4 not an image")
        with pytest.raises(errors.CorruptImage):
            imgpress.compress(images.jpeg()[:2500], filename="cut.jpg")
        big = tmp_path / "big.jpg"
        big.write_bytes(images.jpeg() + b"\0" * (2 * 1024 * 1024))
        with pytest.raises(errors.TooLarge):
            imgpress.submit(big)


def test_async_client_compresses_many_with_each_outcome(stack: Stack) -> None:
    async def run() -> list[Result | errors.ImgpressError]:
        async with AsyncClient(stack.url) as imgpress:
            return await imgpress.compress_many(
                [images.jpeg(), images.png_with_alpha(), images.jpeg()[:2500]], concurrency=2
            )

    good_jpeg, good_png, cut = asyncio.run(run())
    assert isinstance(good_jpeg, Result) and good_jpeg.media_type == "image/jpeg"
    assert isinstance(good_png, Result) and good_png.media_type == "image/png"
    assert isinstance(cut, errors.CorruptImage)


def test_redis_outage_is_retried_then_succeeds_or_gives_up(tmp_path: Path) -> None:
    port = free_port()
    redis_dir = tmp_path / "redis"
    redis = start_redis(port, redis_dir)
    settings = replace(
        Settings.from_env({}),
        redis_url=f"redis://127.0.0.1:{port}/0",
        data_dir=tmp_path / "data",
        port=free_port(),
    )
    api = Stack(settings, tmp_path)
    api.start_api()
    try:
        api.wait_ready(path="/healthz")
        redis.terminate()
        redis.wait(timeout=10)
        seen: list[Retry] = []
        with Client(api.url, retry=FAST_RETRY, on_retry=seen.append) as imgpress:
            with pytest.raises(errors.ServiceUnavailable):
                imgpress.submit(images.jpeg())
        assert [(retry.attempt, retry.reason) for retry in seen] == [(1, "HTTP 503"), (2, "HTTP 503")]

        def redis_comes_back(retry: Retry) -> None:
            nonlocal redis
            seen.append(retry)
            if retry.attempt == 1:
                redis = start_redis(port, redis_dir)

        seen.clear()
        with Client(api.url, retry=FAST_RETRY, on_retry=redis_comes_back) as imgpress:
            job = imgpress.submit(images.jpeg(), filename="after-outage.jpg")
        assert job.status == "queued" and job.input.filename == "after-outage.jpg"
        assert seen[0].reason == "HTTP 503"
    finally:
        api.stop()
        redis.terminate()
        redis.wait(timeout=10)


def test_api_key_is_sent_and_a_missing_one_is_unauthorized(
    redis_databases: DatabasePool, tmp_path: Path
) -> None:
    for stack in running_stack(redis_databases, tmp_path, api_keys=("key-one-0123456789",)):
        with Client(stack.url, api_key="key-one-0123456789") as imgpress:
            assert imgpress.compress(images.jpeg()).job.status == "finished"
        with Client(stack.url) as anonymous, pytest.raises(Unauthorized):
            anonymous.submit(images.jpeg())
        with Client(stack.url) as anonymous, pytest.raises(Unauthorized):
            anonymous.check_access()
        with Client(stack.url, api_key="wrong") as wrong, pytest.raises(Unauthorized):
            wrong.status("0" * 32)


def test_typed_options_reach_the_server_and_bad_ones_never_leave(stack: Stack) -> None:
    with Client(stack.url) as imgpress:
        result = imgpress.compress(images.jpeg(), format="webp", effort="fast", width=100, quality="auto")
        assert result.media_type == "image/webp" and result.filename.endswith(".webp")
        assert result.job.options["effort"] == "fast" and result.job.output is not None
        assert result.job.output.width == 100
        with pytest.raises(errors.UnknownOption, match="max_byte"):
            imgpress.submit(images.jpeg(), max_byte=5000)  # type: ignore[call-arg]


def test_compress_many_keeps_every_outcome_even_for_a_missing_file(stack: Stack, tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(images.jpeg())
    sources: list[Path | bytes] = [
        good,
        tmp_path / "missing.jpg",
        images.jpeg()[:2500],
        images.png_with_alpha(),
    ]

    async def run() -> list[Result | errors.ImgpressError]:
        async with AsyncClient(stack.url) as imgpress:
            return await imgpress.compress_many(sources, concurrency=2)

    with Client(stack.url) as imgpress:
        blocking = imgpress.compress_many(sources, concurrency=2)
    for outcomes in (asyncio.run(run()), blocking):
        first, missing, cut, png = outcomes
        assert isinstance(first, Result) and first.media_type == "image/jpeg"
        assert isinstance(missing, errors.FileUnreadable) and "missing.jpg" in missing.message
        assert isinstance(cut, errors.CorruptImage)
        assert isinstance(png, Result) and png.media_type == "image/png"


def test_a_batch_is_created_watched_waited_for_and_archived(stack: Stack) -> None:
    letter = io.BytesIO(b"Dear imgpress, this is not a JPEG.\n" * 20)
    letter.name = "letter.jpg"
    with Client(stack.url) as imgpress:
        batch = imgpress.create_batch([images.jpeg(), letter, images.png_with_alpha()], quality=60)
        assert len(batch.jobs) == 2 and batch.total == 2
        (rejected,) = batch.rejected
        assert rejected.filename == "letter.jpg" and rejected.error.code == "unsupported_media"
        assert rejected.index in (None, 1)
        events = list(imgpress.batch_events(batch.id))
        assert events[-1].name == "batch" and events[-1].data["status"] == "finished"
        assert {event.data["id"] for event in events if event.name == "job"} == {j.id for j in batch.jobs}
        done = imgpress.wait_batch(batch.id, timeout=60)
        assert done.is_terminal and done.counts["finished"] == 2
        assert all(job.status == "finished" and job.options["quality"] == 60 for job in done.jobs)
        with zipfile.ZipFile(io.BytesIO(imgpress.archive(batch.id))) as archive:
            assert len(archive.namelist()) == 2
        imgpress.delete_batch(batch.id)
        with pytest.raises(errors.JobExpired):
            imgpress.batch(batch.id)


def test_job_events_arrive_sync_and_async(stack: Stack) -> None:
    with Client(stack.url) as imgpress:
        job = imgpress.submit(images.jpeg())
        names = [event.name for event in imgpress.job_events(job.id)]
    assert names[-1] == "finished" and set(names) <= {"queued", "started", "finished"}

    async def watch() -> list[Event]:
        async with AsyncClient(stack.url) as imgpress:
            job = await imgpress.submit(images.png_with_alpha())
            batch = await imgpress.create_batch([images.jpeg()])
            seen = [event async for event in imgpress.job_events(job.id)]
            seen += [event async for event in imgpress.batch_events(batch.id)]
            return seen

    seen = asyncio.run(watch())
    finished = [event for event in seen if event.name == "finished"]
    assert len(finished) == 1 and finished[0].job is not None and finished[0].job.status == "finished"
    assert seen[-1].name == "batch" and seen[-1].data["status"] == "finished"


def test_a_wrong_url_is_not_an_imgpress_api(stack: Stack) -> None:
    with Client(f"{stack.url}/v1") as imgpress, pytest.raises(UnexpectedResponse, match="No imgpress API"):
        imgpress.check_access()
    with Client(stack.url) as imgpress:
        imgpress.check_access()
