"""`Client` (blocking) and `AsyncClient`: jobs, batches and their events over httpx, with retries."""

from __future__ import annotations

import asyncio
import json
import random
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, Unpack

import httpx

from imgpress.errors import (
    FileUnreadable,
    ImgpressError,
    JobNotFinished,
    Unauthorized,
    UnexpectedResponse,
    error_body,
    error_for,
    from_response,
    from_transport,
    retry_after,
)
from imgpress.models import Batch, Event, EventParser, Job, Options, check_options
from imgpress.upload import Source, UploadBody, filename_of

__all__ = ["AsyncClient", "Client", "Download", "Result", "Retry", "RetryPolicy"]

#: The server holds `?wait=` requests at most this long.
MAX_WAIT_SECONDS = 30.0
RETRY_STATUSES = frozenset({429, 503})
#: What `compress` accepts from its upload: the output itself if the job finishes in time, else the job.
IMAGE_OR_JOB = "image/*, application/json;q=0.5"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
#: A job id no job has: the access check asks for it.
NO_JOB = "0" * 32


@dataclass(frozen=True)
class Retry:
    """What `on_retry` is told before the client waits and tries again."""

    attempt: int
    delay: float
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: exponential backoff with jitter, capped, Retry-After first."""

    retries: int = DEFAULT_RETRIES
    backoff: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        asked = retry_after(response) if response is not None else None
        if asked is None:
            asked = self.backoff * 2**attempt * (0.5 + random.random() / 2)
        return min(asked, self.max_delay)


@dataclass(frozen=True)
class Download:
    """A finished job's output: its bytes and the file name the server suggests for it."""

    data: bytes
    filename: str


@dataclass(frozen=True)
class Result:
    """A finished job and its compressed bytes."""

    job: Job
    data: bytes
    #: The server's name for the output, with the output format's extension.
    filename: str

    @property
    def saved_bytes(self) -> int:
        """Bytes saved compared with the upload."""
        return self.job.input.bytes - len(self.data)

    @property
    def media_type(self) -> str:
        """The output's media type."""
        assert self.job.output is not None
        return self.job.output.media_type


def job_from(response: httpx.Response) -> Job:
    """The job in a successful answer, or the error the answer stands for."""
    if response.is_success:
        return Job.from_dict(response.json())
    raise from_response(response)


def batch_from(response: httpx.Response) -> Batch:
    """The batch in a successful answer, or the error the answer stands for."""
    if response.is_success:
        return Batch.from_dict(response.json())
    raise from_response(response)


def download_from(response: httpx.Response) -> Download:
    """The output in a result answer, or the error the answer stands for."""
    if not response.is_success:
        raise from_response(response)
    header = Message()
    header["content-disposition"] = response.headers.get("content-disposition", "")
    return Download(response.content, header.get_filename() or "")


def output_or_job(response: httpx.Response) -> Result | Job:
    """What an upload sent with IMAGE_OR_JOB answers: the finished Result, or the job to wait for."""
    if not (response.is_success and response.headers.get("content-type", "").startswith("image/")):
        return job_from(response)
    job = Job.from_dict(json.loads(response.headers["imgpress-job"]))
    output = download_from(response)
    return Result(job, output.data, output.filename)


def check_finished(job: Job) -> None:
    """Raise the job's own error if it failed, or JobNotFinished if it has not ended yet."""
    if job.status == "failed":
        assert job.error is not None
        raise error_for(job.error.code, job.error.message)
    if job.status != "finished":
        raise JobNotFinished()


def access_checked(response: httpx.Response, base_url: str) -> None:
    """Whether the answer to the access check shows an imgpress API that takes our key.

    The check is `PUT /v1/jobs/{id}`: a protected route that only has GET and DELETE, so an
    imgpress API that takes the key answers 405; a wrong key gets 401; a wrong URL 404.
    """
    if response.status_code == 405 and error_body(response)[0] == "method_not_allowed":
        return
    if response.status_code == 401:
        raise Unauthorized(error_body(response)[1])
    if response.status_code >= 500 or response.status_code == 429:
        raise from_response(response)
    raise UnexpectedResponse(
        f"No imgpress API at {base_url} (HTTP {response.status_code} for "
        f"{response.request.url.path}); check the server URL.",
        status=response.status_code,
    )


class _Base(ABC):
    """Settings and request building shared by both clients."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[Retry], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"user-agent": "imgpress-client"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self._http = self._connect()

    @abstractmethod
    def _connect(self) -> Any:
        """The httpx client (blocking or async) this client sends through."""

    def _next_delay(self, attempt: int, response: httpx.Response | None, reason: str) -> float:
        delay = self.retry.delay(attempt, response)
        if self.on_retry is not None:
            self.on_retry(Retry(attempt + 1, delay, reason))
        return delay

    def _plan_retry(
        self, attempt: int, repeatable: bool, answer: httpx.Response | httpx.TransportError
    ) -> float | None:
        """Seconds to wait before trying again; None to return the answer; raises for a lost one."""
        if isinstance(answer, httpx.TransportError):
            # Only a refused connection is surely unsent; anything else may have reached the server.
            if not isinstance(answer, httpx.ConnectError) or attempt >= self.retry.retries:
                raise from_transport(answer) from answer
            return self._next_delay(attempt, None, f"{type(answer).__name__}: {answer}")
        if answer.status_code not in RETRY_STATUSES or attempt >= self.retry.retries or not repeatable:
            return None
        return self._next_delay(attempt, answer, f"HTTP {answer.status_code}")

    def _submit_request(
        self,
        source: Source,
        filename: str | None,
        wait: float,
        options: Mapping[str, object],
        callback_url: str | None = None,
        accept: str = "",
    ) -> tuple[UploadBody, dict[str, Any]]:
        """The body and request arguments of an upload (POST /v1/jobs), options checked first."""
        params = check_options(options)
        upload = UploadBody(source)
        name = filename_of(source, filename)
        if name:
            params["filename"] = name
        if callback_url:
            params["callback_url"] = callback_url
        wait = min(wait, MAX_WAIT_SECONDS)
        if wait:
            params["wait"] = f"{wait:g}"
        headers = {"content-type": "application/octet-stream", **upload.headers()}
        if accept:
            headers["accept"] = accept
        return upload, {"params": params, "headers": headers, "timeout": self.timeout + wait}

    def _status_request(self, wait: float) -> dict[str, Any]:
        """The request arguments of GET /v1/jobs/{id}, `wait` capped at 30 s."""
        wait = min(wait, MAX_WAIT_SECONDS)
        return {"params": {"wait": f"{wait:g}"} if wait else {}, "timeout": self.timeout + wait}

    @staticmethod
    def _batch_files(sources: Sequence[Source], files: ExitStack) -> list[tuple[str, Any]]:
        """The multipart `file` fields of a batch upload; paths are opened (closed by `files`)."""
        fields: list[tuple[str, Any]] = []
        for index, source in enumerate(sources):
            name = filename_of(source, None) or f"image-{index + 1}"
            body: bytes | IO[bytes]
            if isinstance(source, bytes):
                body = source
            elif isinstance(source, str | Path) or hasattr(source, "__fspath__"):
                UploadBody(source)  # FileUnreadable for a missing file, before anything is sent
                body = files.enter_context(open(source, "rb"))  # noqa: SIM115 - closed by `files`
            else:
                body = source
            fields.append(("file", (name, body, "application/octet-stream")))
        return fields


def _compress_outcome(error: BaseException) -> ImgpressError:
    """What compress_many records for a file that failed."""
    if isinstance(error, ImgpressError):
        return error
    return FileUnreadable(str(error))


class Client(_Base):
    """A blocking client; use it as a context manager so its connections are closed."""

    _http: httpx.Client

    def _connect(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=self.timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _request(
        self,
        method: str,
        url: str,
        upload: UploadBody | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        attempt = 0
        while True:
            if upload is not None:
                kwargs["content"] = upload.chunks()
            try:
                answer: httpx.Response | httpx.TransportError = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                answer = exc
            delay = self._plan_retry(attempt, upload is None or upload.repeatable, answer)
            if delay is None:
                assert isinstance(answer, httpx.Response)
                return answer
            time.sleep(delay)
            attempt += 1

    def _checked(self, method: str, url: str) -> None:
        response = self._request(method, url)
        if not response.is_success:
            raise from_response(response)

    def _events(self, url: str) -> Iterator[Event]:
        parser = EventParser()
        try:
            with self._http.stream("GET", url, timeout=httpx.Timeout(self.timeout, read=None)) as response:
                if not response.is_success:
                    response.read()
                    raise from_response(response)
                for line in response.iter_lines():
                    if (event := parser.feed(line)) is not None:
                        yield event
        except httpx.TransportError as exc:
            raise from_transport(exc) from exc

    def ping(self) -> None:
        """Check that the server answers; ServerUnreachable (after retries) if it does not."""
        self._checked("GET", "/healthz")

    def check_access(self) -> None:
        """Check that the URL is an imgpress API that takes this client's key (if it asks for one).

        Raises Unauthorized for a refused key, UnexpectedResponse for a server that is not an
        imgpress API (a wrong path), ServerUnreachable if nothing answers.
        """
        access_checked(self._request("PUT", f"/v1/jobs/{NO_JOB}"), self.base_url)

    def submit(
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
        return job_from(self._request("POST", "/v1/jobs", upload, **arguments))

    def status(self, job_id: str, wait: float = 0) -> Job:
        """The job now, or once it ends if that is within `wait` seconds (at most 30)."""
        return job_from(self._request("GET", f"/v1/jobs/{job_id}", **self._status_request(wait)))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has finished or failed; as it is if `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = MAX_WAIT_SECONDS if deadline is None else max(0.0, deadline - time.monotonic())
            job = self.status(job_id, wait=min(remaining, MAX_WAIT_SECONDS))
            if job.is_terminal or (deadline is not None and time.monotonic() >= deadline):
                return job

    def download(self, job_id: str) -> Download:
        """The output of a finished job, with its suggested file name."""
        return download_from(self._request("GET", f"/v1/jobs/{job_id}/result"))

    def result(self, job_id: str) -> bytes:
        """The compressed bytes of a finished job."""
        return self.download(job_id).data

    def delete(self, job_id: str) -> None:
        """Delete a job and its files now; its id answers JobExpired from then on."""
        self._checked("DELETE", f"/v1/jobs/{job_id}")

    def job_events(self, job_id: str) -> Iterator[Event]:
        """The job's status changes as they happen (one event per status), until it ends."""
        return self._events(f"/v1/jobs/{job_id}/events")

    def compress(self, source: Source, *, filename: str | None = None, **options: Unpack[Options]) -> Result:
        """Upload, wait for the end and download: one request when the job ends within 30 s."""
        upload, arguments = self._submit_request(
            source, filename, MAX_WAIT_SECONDS, options, accept=IMAGE_OR_JOB
        )
        answer = output_or_job(self._request("POST", "/v1/jobs", upload, **arguments))
        if isinstance(answer, Result):
            return answer
        job = answer if answer.is_terminal else self.wait(answer.id)
        check_finished(job)
        output = self.download(job.id)
        return Result(job, output.data, output.filename)

    def compress_many(
        self, sources: Sequence[Source], *, concurrency: int = 4, **options: Unpack[Options]
    ) -> list[Result | ImgpressError]:
        """Compress several images, `concurrency` at once; for each, in order, a Result or its error."""
        check_options(options)

        def one(source: Source) -> Result | ImgpressError:
            try:
                return self.compress(source, **options)
            except (ImgpressError, OSError) as exc:
                return _compress_outcome(exc)

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(one, sources))

    def create_batch(
        self, sources: Sequence[Source], *, callback_url: str | None = None, **options: Unpack[Options]
    ) -> Batch:
        """Upload several images as one batch with the same options; refused files are in `rejected`."""
        params = check_options(options)
        if callback_url:
            params["callback_url"] = callback_url
        with ExitStack() as files:
            fields = self._batch_files(sources, files)
            try:
                response = self._http.post("/v1/batches", params=params, files=fields)
            except httpx.TransportError as exc:
                raise from_transport(exc) from exc
            return batch_from(response)

    def batch(self, batch_id: str) -> Batch:
        """The batch now: its jobs, the refused files, counts and byte totals."""
        return batch_from(self._request("GET", f"/v1/batches/{batch_id}"))

    def wait_batch(self, batch_id: str, timeout: float | None = None) -> Batch:
        """The batch once every job has ended (watching its events); as it is if `timeout` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self.batch_events(batch_id):
            if event.name == "batch" and event.data.get("status") == "finished":
                break
            if deadline is not None and time.monotonic() > deadline:
                break
        return self.batch(batch_id)

    def batch_events(self, batch_id: str) -> Iterator[Event]:
        """A `job` event per job status change and a `batch` event with the totals, until all end."""
        return self._events(f"/v1/batches/{batch_id}/events")

    def archive(self, batch_id: str) -> bytes:
        """A ZIP of the batch's outputs finished so far."""
        return download_from(self._request("GET", f"/v1/batches/{batch_id}/archive")).data

    def delete_batch(self, batch_id: str) -> None:
        """Delete a batch, its jobs and their files now."""
        self._checked("DELETE", f"/v1/batches/{batch_id}")


class AsyncClient(_Base):
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
                    return _compress_outcome(exc)

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
