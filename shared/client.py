"""The Python client for imgpress: `Client` (blocking) and `AsyncClient`, on httpx.

    from shared.client import Client
    with Client("http://127.0.0.1:8000") as imgpress:
        result = imgpress.compress("photo.jpg", quality=70)
        Path("photo.min.jpg").write_bytes(result.data)

It depends only on httpx and the contract in `shared` (schema, options, errors), never on the
server's libraries. Uploads are streamed from disk in chunks; a 503 or 429 is retried with
exponential backoff, honouring `Retry-After`, a bounded number of times; errors are the tree
drawn in `shared/client_errors.py`.
"""

from __future__ import annotations

import asyncio
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from shared.client_answers import Download, Result, download_from, failure_of, job_from, output_or_job
from shared.client_errors import error_for, from_response, from_transport, retry_after
from shared.errors import ImgpressError
from shared.schema import Job, JobStatus
from shared.upload_body import Source, UploadBody, filename_of, upload_params

__all__ = ["AsyncClient", "Client", "Download", "Result", "Retry", "RetryPolicy"]

#: The server holds `?wait=` requests at most this long.
MAX_WAIT_SECONDS = 30.0
RETRY_STATUSES = frozenset({429, 503})
#: What `compress` accepts from its upload: the output itself if the job finishes in time, else the job.
IMAGE_OR_JOB = "image/*, application/json;q=0.5"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3


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


class _Base(ABC):
    """Settings shared by both clients."""

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
        self, attempt: int, upload: UploadBody | None, answer: httpx.Response | httpx.TransportError
    ) -> float | None:
        """Seconds to wait before trying again; None to return the answer; raises for a lost one."""
        if isinstance(answer, httpx.TransportError):
            # Only a refused connection is surely unsent; anything else may have reached the server.
            if not isinstance(answer, httpx.ConnectError) or attempt >= self.retry.retries:
                raise from_transport(answer) from answer
            return self._next_delay(attempt, None, f"{type(answer).__name__}: {answer}")
        if (
            answer.status_code not in RETRY_STATUSES
            or attempt >= self.retry.retries
            or (upload is not None and not upload.repeatable)
        ):
            return None
        return self._next_delay(attempt, answer, f"HTTP {answer.status_code}")

    def _submit_request(
        self, source: Source, filename: str | None, wait: float, options: dict[str, Any], accept: str = ""
    ) -> tuple[UploadBody, dict[str, Any]]:
        """The body and request arguments of an upload (POST /v1/jobs), `wait` capped at 30 s."""
        upload = UploadBody(source)
        params = upload_params(filename_of(source, filename), options)
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


def _check_finished(job: Job) -> None:
    """Raise the job's own error if it failed, or not_finished if it has not ended yet."""
    if job.status is JobStatus.FAILED:
        raise failure_of(job)
    if job.status is not JobStatus.FINISHED:
        raise error_for("not_finished")


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
        self, method: str, url: str, upload: UploadBody | None = None, **kwargs: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            if upload is not None:
                kwargs["content"] = upload.chunks()
            try:
                answer: httpx.Response | httpx.TransportError = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                answer = exc
            delay = self._plan_retry(attempt, upload, answer)
            if delay is None:
                assert isinstance(answer, httpx.Response)
                return answer
            time.sleep(delay)
            attempt += 1

    def submit(self, source: Source, *, filename: str | None = None, wait: float = 0, **options: Any) -> Job:
        """Upload an image (path, bytes or binary file) and queue it; the job, once ended if that
        happens within `wait` seconds (at most 30)."""
        upload, arguments = self._submit_request(source, filename, wait, options)
        return job_from(self._request("POST", "/v1/jobs", upload, **arguments))

    def status(self, job_id: str, wait: float = 0) -> Job:
        """The job now, or once it ends if that is within `wait` seconds (at most 30)."""
        return job_from(self._request("GET", f"/v1/jobs/{job_id}", **self._status_request(wait)))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has finished or failed; as it is if `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.status(job_id)
        while not job.status.is_terminal:
            remaining = MAX_WAIT_SECONDS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            job = self.status(job_id, wait=min(remaining, MAX_WAIT_SECONDS))
        return job

    def ping(self) -> None:
        """Check that the server answers; ServerUnreachable (after retries) if it does not."""
        response = self._request("GET", "/healthz")
        if not response.is_success:
            raise from_response(response)

    def download(self, job_id: str) -> Download:
        """The output of a finished job, with its suggested file name."""
        return download_from(self._request("GET", f"/v1/jobs/{job_id}/result"))

    def result(self, job_id: str) -> bytes:
        """The compressed bytes of a finished job."""
        return self.download(job_id).data

    def delete(self, job_id: str) -> None:
        """Delete a job and its files now; its id answers JobExpired from then on."""
        response = self._request("DELETE", f"/v1/jobs/{job_id}")
        if not response.is_success:
            raise from_response(response)

    def compress(self, source: Source, *, filename: str | None = None, **options: Any) -> Result:
        """Upload, wait for the end and download: one request when the job ends within 30 s."""
        upload, arguments = self._submit_request(source, filename, MAX_WAIT_SECONDS, options, IMAGE_OR_JOB)
        answer = output_or_job(self._request("POST", "/v1/jobs", upload, **arguments))
        if isinstance(answer, Result):
            return answer
        job = answer if answer.status.is_terminal else self.wait(answer.id)
        _check_finished(job)
        output = self.download(job.id)
        return Result(job, output.data, output.filename)


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
            delay = self._plan_retry(attempt, upload, answer)
            if delay is None:
                assert isinstance(answer, httpx.Response)
                return answer
            await asyncio.sleep(delay)
            attempt += 1

    async def submit(
        self, source: Source, *, filename: str | None = None, wait: float = 0, **options: Any
    ) -> Job:
        """Upload an image (path, bytes or binary file) and queue it; the job, once ended if that
        happens within `wait` seconds (at most 30)."""
        upload, arguments = self._submit_request(source, filename, wait, options)
        return job_from(await self._request("POST", "/v1/jobs", upload, **arguments))

    async def status(self, job_id: str, wait: float = 0) -> Job:
        """The job now, or once it ends if that is within `wait` seconds (at most 30)."""
        return job_from(await self._request("GET", f"/v1/jobs/{job_id}", **self._status_request(wait)))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has finished or failed; as it is if `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = await self.status(job_id)
        while not job.status.is_terminal:
            remaining = MAX_WAIT_SECONDS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            job = await self.status(job_id, wait=min(remaining, MAX_WAIT_SECONDS))
        return job

    async def ping(self) -> None:
        """Check that the server answers; ServerUnreachable (after retries) if it does not."""
        response = await self._request("GET", "/healthz")
        if not response.is_success:
            raise from_response(response)

    async def download(self, job_id: str) -> Download:
        """The output of a finished job, with its suggested file name."""
        return download_from(await self._request("GET", f"/v1/jobs/{job_id}/result"))

    async def result(self, job_id: str) -> bytes:
        """The compressed bytes of a finished job."""
        return (await self.download(job_id)).data

    async def delete(self, job_id: str) -> None:
        """Delete a job and its files now; its id answers JobExpired from then on."""
        response = await self._request("DELETE", f"/v1/jobs/{job_id}")
        if not response.is_success:
            raise from_response(response)

    async def compress(self, source: Source, *, filename: str | None = None, **options: Any) -> Result:
        """Upload, wait for the end and download: one request when the job ends within 30 s."""
        upload, arguments = self._submit_request(source, filename, MAX_WAIT_SECONDS, options, IMAGE_OR_JOB)
        answer = output_or_job(await self._request("POST", "/v1/jobs", upload, **arguments))
        if isinstance(answer, Result):
            return answer
        job = answer if answer.status.is_terminal else await self.wait(answer.id)
        _check_finished(job)
        output = await self.download(job.id)
        return Result(job, output.data, output.filename)

    async def compress_many(
        self, sources: list[Source], concurrency: int = 4, **options: Any
    ) -> list[Result | ImgpressError]:
        """Compress several images, at most `concurrency` at once; each a Result or its error."""
        gate = asyncio.Semaphore(concurrency)

        async def one(source: Source) -> Result | ImgpressError:
            async with gate:
                try:
                    return await self.compress(source, **options)
                except ImgpressError as exc:
                    return exc

        return list(await asyncio.gather(*(one(source) for source in sources)))
