"""What both clients share: settings, retries with backoff, and how requests are built."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from imgpress.errors import (
    FileUnreadable,
    ImgpressError,
    from_transport,
    retry_after,
)
from imgpress.models import check_options
from imgpress.upload import Source, UploadBody, filename_of

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


class Base(ABC):
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


def outcome_of(error: BaseException) -> ImgpressError:
    """What compress_many records for a file that failed."""
    if isinstance(error, ImgpressError):
        return error
    return FileUnreadable(str(error))
