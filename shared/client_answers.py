"""What the imgpress API answers, as the client's values: jobs, outputs, finished results, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import Message

import httpx

from shared.client_errors import error_for, from_response
from shared.errors import ImgpressError
from shared.schema import Job


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


def failure_of(job: Job) -> ImgpressError:
    """The error a failed job ended with, as the exception the client raises."""
    assert job.error is not None
    return error_for(job.error.code, job.error.message)
