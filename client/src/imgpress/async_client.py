"""`AsyncClient`: the same calls as `Client` for asyncio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import Any, Self, Unpack

import httpx

from imgpress.answers import (
    Download,
    Result,
    access_checked,
    batch_from,
    check_finished,
    download_from,
    job_from,
    output_or_job,
)
from imgpress.base import IMAGE_OR_JOB, MAX_WAIT_SECONDS, NO_JOB, Base, outcome_of
from imgpress.errors import (
    ImgpressError,
    from_response,
    from_transport,
)
from imgpress.models import Batch, Event, EventParser, Job, Options, check_options
from imgpress.upload import Source, UploadBody

__all__ = ["AsyncClient"]


class AsyncClient(Base):
    """The same client for asyncio; use it as an async context manager."""

    _http: httpx.AsyncClient

    def _connect(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=self.timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _request(
        self, method: str, url: str, upload: UploadBody | None = None, **kwargs: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            if upload is not None:
                kwargs["content"] = upload.async_chunks()
            try:
                answer: httpx.Response | httpx.TransportError = await self._http.request(
                    method, url, **kwargs
                )
            except httpx.TransportError as exc:
                answer = exc
            delay = self._plan_retry(attempt, upload is None or upload.repeatable, answer)
            if delay is None:
                assert isinstance(answer, httpx.Response)
                return answer
            await asyncio.sleep(delay)
            attempt += 1

    async def _checked(self, method: str, url: str) -> None:
        response = await self._request(method, url)
        if not response.is_success:
            raise from_response(response)

    async def _events(self, url: str) -> AsyncIterator[Event]:
        parser = EventParser()
        try:
            async with self._http.stream(
                "GET", url, timeout=httpx.Timeout(self.timeout, read=None)
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise from_response(response)
                async for line in response.aiter_lines():
                    if (event := parser.feed(line)) is not None:
                        yield event
        except httpx.TransportError as exc:
            raise from_transport(exc) from exc

    async def ping(self) -> None:
        """Check that the server answers; ServerUnreachable (after retries) if it does not."""
        await self._checked("GET", "/healthz")

    async def check_access(self) -> None:
        """Check that the URL is an imgpress API that takes this client's key (Client.check_access)."""
        access_checked(await self._request("PUT", f"/v1/jobs/{NO_JOB}"), self.base_url)

    async def submit(
        self,
        source: Source,
        *,
        filename: str | None = None,
        wait: float = 0,
        callback_url: str | None = None,
        **options: Unpack[Options],
    ) -> Job:
        """Upload an image (path, bytes or binary file) and queue it; the job, once ended if that
        happens within `wait` seconds (at most 30)."""
        upload, arguments = self._submit_request(source, filename, wait, options, callback_url)
        return job_from(await self._request("POST", "/v1/jobs", upload, **arguments))

    async def status(self, job_id: str, wait: float = 0) -> Job:
        """The job now, or once it ends if that is within `wait` seconds (at most 30)."""
        return job_from(await self._request("GET", f"/v1/jobs/{job_id}", **self._status_request(wait)))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has finished or failed; as it is if `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = MAX_WAIT_SECONDS if deadline is None else max(0.0, deadline - time.monotonic())
            job = await self.status(job_id, wait=min(remaining, MAX_WAIT_SECONDS))
            if job.is_terminal or (deadline is not None and time.monotonic() >= deadline):
                return job

    async def download(self, job_id: str) -> Download:
        """The output of a finished job, with its suggested file name."""
        return download_from(await self._request("GET", f"/v1/jobs/{job_id}/result"))

    async def result(self, job_id: str) -> bytes:
        """The compressed bytes of a finished job."""
        return (await self.download(job_id)).data

    async def delete(self, job_id: str) -> None:
        """Delete a job and its files now; its id answers JobExpired from then on."""
        await self._checked("DELETE", f"/v1/jobs/{job_id}")

    def job_events(self, job_id: str) -> AsyncIterator[Event]:
        """The job's status changes as they happen (one event per status), until it ends."""
        return self._events(f"/v1/jobs/{job_id}/events")

    async def compress(
        self, source: Source, *, filename: str | None = None, **options: Unpack[Options]
    ) -> Result:
        """Upload, wait for the end and download: one request when the job ends within 30 s."""
        upload, arguments = self._submit_request(
            source, filename, MAX_WAIT_SECONDS, options, accept=IMAGE_OR_JOB
        )
        answer = output_or_job(await self._request("POST", "/v1/jobs", upload, **arguments))
        if isinstance(answer, Result):
            return answer
        job = answer if answer.is_terminal else await self.wait(answer.id)
        check_finished(job)
        output = await self.download(job.id)
        return Result(job, output.data, output.filename)

    async def compress_many(
        self, sources: Sequence[Source], *, concurrency: int = 4, **options: Unpack[Options]
    ) -> list[Result | ImgpressError]:
        """Compress several images, `concurrency` at once; for each, in order, a Result or its error."""
        check_options(options)
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(source: Source) -> Result | ImgpressError:
            async with gate:
                try:
                    return await self.compress(source, **options)
                except (ImgpressError, OSError) as exc:
                    return outcome_of(exc)

        return list(await asyncio.gather(*(one(source) for source in sources)))

    async def create_batch(
        self, sources: Sequence[Source], *, callback_url: str | None = None, **options: Unpack[Options]
    ) -> Batch:
        """Upload several images as one batch with the same options; refused files are in `rejected`."""
        params = check_options(options)
        if callback_url:
            params["callback_url"] = callback_url
        with ExitStack() as files:
            fields = self._batch_files(sources, files)
            try:
                response = await self._http.post("/v1/batches", params=params, files=fields)
            except httpx.TransportError as exc:
                raise from_transport(exc) from exc
            return batch_from(response)

    async def batch(self, batch_id: str) -> Batch:
        """The batch now: its jobs, the refused files, counts and byte totals."""
        return batch_from(await self._request("GET", f"/v1/batches/{batch_id}"))

    async def wait_batch(self, batch_id: str, timeout: float | None = None) -> Batch:
        """The batch once every job has ended (watching its events); as it is if `timeout` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        async for event in self.batch_events(batch_id):
            if event.name == "batch" and event.data.get("status") == "finished":
                break
            if deadline is not None and time.monotonic() > deadline:
                break
        return await self.batch(batch_id)

    def batch_events(self, batch_id: str) -> AsyncIterator[Event]:
        """A `job` event per job status change and a `batch` event with the totals, until all end."""
        return self._events(f"/v1/batches/{batch_id}/events")

    async def archive(self, batch_id: str) -> bytes:
        """A ZIP of the batch's outputs finished so far."""
        return download_from(await self._request("GET", f"/v1/batches/{batch_id}/archive")).data

    async def delete_batch(self, batch_id: str) -> None:
        """Delete a batch, its jobs and their files now."""
        await self._checked("DELETE", f"/v1/batches/{batch_id}")
