"""What the API answers, read into the client's values: jobs, batches, outputs, results, errors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from imgpress.errors import (
    JobNotFinished,
    Unauthorized,
    UnexpectedResponse,
    error_body,
    error_for,
    from_response,
)
from imgpress.models import Batch, Job
from imgpress.saving import disposition_filename, save


@dataclass(frozen=True)
class Download:
    """A finished job's output: its bytes and the file name the server suggests for it."""

    data: bytes
    filename: str

    def save(self, where: str | os.PathLike[str] = ".", *, overwrite: bool = False) -> Path:
        """Write the output into a folder (as `filename`) or to a file path; the path written.

        - where: an existing folder (default: the current one), a folder to make (a string
          ending in `/`), or the file to write.
        - overwrite: replace a file already there; otherwise FileExistsError, nothing written.
        """
        return save(self.data, self.filename, where, overwrite)


@dataclass(frozen=True)
class Result:
    """A finished job and its compressed bytes."""

    job: Job
    data: bytes
    #: The server's name for the output: the upload's name with the output format's extension,
    #: so often the name of the file uploaded; save() never replaces a file unless asked to.
    filename: str

    def save(self, where: str | os.PathLike[str] = ".", *, overwrite: bool = False) -> Path:
        """Write the output into a folder (as `filename`) or to a file path; the path written.

        - where: an existing folder (default: the current one), a folder to make (a string
          ending in `/`), or the file to write.
        - overwrite: replace a file already there (the uploaded photo, say); otherwise
          FileExistsError, and nothing is written.
        """
        return save(self.data, self.filename, where, overwrite)

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
    filename = disposition_filename(response.headers.get("content-disposition", ""))
    return Download(response.content, filename)


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
