"""What the OpenAPI document says about each endpoint beyond its route and docstring: its
responses, the errors it can answer with, its parameters and body (api/openapi.py builds it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from api import batches, capabilities, health, jobs, observability, page, params, schemas, seed
from api.params import Accepted
from api.schemas import JSON, batch_body, envelope_of, json_content, path_parameter, ref, upload_body
from shared import errors

Endpoint = Callable[[Request], Any]

_UPLOAD_ERRORS = (
    errors.BadOption,
    errors.TooLarge,
    errors.UnsupportedMedia,
    errors.CorruptImage,
    errors.StorageFull,
    errors.RateLimited,
    errors.ServiceUnavailable,
    errors.QueueFull,
    errors.Overloaded,
    errors.RequestTimeout,
)
_LOOKUP_ERRORS = (errors.JobNotFound, errors.JobExpired, errors.ServiceUnavailable, errors.Overloaded)
_RESULT_ERRORS = (*_LOOKUP_ERRORS, errors.JobNotFinished, errors.JobFailed)
_BATCH_LOOKUP_ERRORS = (
    errors.BatchNotFound,
    errors.BatchExpired,
    errors.ServiceUnavailable,
    errors.Overloaded,
)


def queued(response: JSON, description: str) -> JSON:
    """A 202 answer: `response`'s content, described, with the new resource's `Location`."""
    return {**response, "description": description, "headers": {"Location": schemas.LOCATION}}


@dataclass(frozen=True)
class Operation:
    """What the document says about one endpoint beyond its route and docstring."""

    #: Successful responses: status -> OpenAPI response object.
    responses: dict[int, JSON]
    #: The imgpress errors the endpoint can answer with.
    raises: tuple[type[errors.ImgpressError], ...] = ()
    #: Errors in the original app's envelope instead of the v1 error body.
    envelope: bool = False
    #: Path and header parameters; the query's come from `accepted`.
    parameters: list[JSON] = field(default_factory=list)
    #: The query parameters and form fields the endpoint reads (api.params).
    accepted: Accepted | None = None
    request_body: JSON | None = None


#: The endpoints of every module but api.openapi, whose own two it adds.
OPERATIONS: dict[Endpoint, Operation] = {
    jobs.create_job: Operation(
        {
            200: {
                "description": (
                    "Ended (finished or failed) within ?wait= seconds: the job resource, or with"
                    " `Accept: image/*` a finished job's compressed image, its resource in `Imgpress-Job`."
                ),
                "headers": {"Imgpress-Job": schemas.IMGPRESS_JOB, "Location": schemas.LOCATION},
                "content": {**schemas.JOB_RESPONSE["content"], **schemas.IMAGE_RESPONSE["content"]},
            },
            202: queued(schemas.JOB_RESPONSE, "Queued."),
        },
        _UPLOAD_ERRORS,
        parameters=[schemas.CONTENT_DISPOSITION],
        accepted=params.JOB_UPLOAD,
        request_body=upload_body(params.JOB_UPLOAD),
    ),
    jobs.get_job: Operation(
        {200: schemas.JOB_RESPONSE},
        (errors.BadOption, *_LOOKUP_ERRORS),
        parameters=[path_parameter("job_id")],
        accepted=params.JOB_READ,
    ),
    jobs.delete_job: Operation(
        {204: {"description": "Deleted; the id answers 410 from now on."}},
        _LOOKUP_ERRORS,
        parameters=[path_parameter("job_id")],
    ),
    jobs.get_result: Operation(
        {200: schemas.IMAGE_RESPONSE, 304: schemas.NOT_MODIFIED},
        _RESULT_ERRORS,
        parameters=[path_parameter("job_id"), schemas.IF_NONE_MATCH],
    ),
    jobs.get_input: Operation(
        {200: {**schemas.IMAGE_RESPONSE, "description": "The image as uploaded (kept while the job lives)."}},
        _LOOKUP_ERRORS,
        parameters=[path_parameter("job_id")],
    ),
    jobs.create_variant: Operation(
        {202: queued(schemas.JOB_RESPONSE, "The new job, queued from the same stored upload.")},
        (errors.BadOption, *_LOOKUP_ERRORS, errors.RateLimited, errors.QueueFull),
        parameters=[path_parameter("job_id")],
        accepted=params.VARIANT,
        request_body={
            "required": False,
            "content": {
                media_type: {"schema": schemas.fields_schema(params.VARIANT)}
                for media_type in ("application/x-www-form-urlencoded", "multipart/form-data")
            },
        },
    ),
    capabilities.get_limits: Operation({200: schemas.LIMITS_RESPONSE}),
    jobs.job_events: Operation(
        {200: schemas.EVENT_STREAM},
        _LOOKUP_ERRORS,
        parameters=[path_parameter("job_id")],
    ),
    batches.create_batch: Operation(
        {202: queued(schemas.BATCH_RESPONSE, "Queued.")},
        _UPLOAD_ERRORS,
        accepted=params.BATCH_UPLOAD,
        request_body=batch_body(params.BATCH_UPLOAD),
    ),
    batches.get_batch: Operation(
        {200: schemas.BATCH_RESPONSE}, _BATCH_LOOKUP_ERRORS, parameters=[path_parameter("batch_id")]
    ),
    batches.delete_batch: Operation(
        {204: {"description": "Deleted with its jobs; the id answers 410 from now on."}},
        _BATCH_LOOKUP_ERRORS,
        parameters=[path_parameter("batch_id")],
    ),
    batches.batch_events: Operation(
        {200: schemas.EVENT_STREAM}, _BATCH_LOOKUP_ERRORS, parameters=[path_parameter("batch_id")]
    ),
    batches.get_archive: Operation(
        {
            200: {
                "description": "A ZIP of the batch's finished outputs, streamed.",
                "content": {"application/zip": {"schema": schemas.BINARY}},
            }
        },
        (*_BATCH_LOOKUP_ERRORS, errors.JobNotFinished),
        parameters=[path_parameter("batch_id")],
    ),
    batches.get_jobs_archive: Operation(
        {
            200: {
                "description": (
                    "A ZIP of the named jobs' finished outputs, streamed; a job that is not yours, unknown,"
                    " not finished, expired or deleted is left out."
                ),
                "content": {"application/zip": {"schema": schemas.BINARY}},
            }
        },
        (
            errors.BadOption,
            errors.JobNotFound,
            errors.JobNotFinished,
            errors.ServiceUnavailable,
            errors.Overloaded,
        ),
        accepted=params.ARCHIVE,
    ),
    observability.metrics: Operation(
        {
            200: {
                "description": "Prometheus text exposition: requests, uploads, jobs, queues.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        }
    ),
    page.favicon: Operation(
        {200: {"description": "The page's icon.", "content": {"image/svg+xml": {"schema": schemas.BINARY}}}}
    ),
    page.index: Operation(
        {200: {"description": "The web page.", "content": {"text/html": {"schema": {"type": "string"}}}}}
    ),
    seed.upload: Operation(
        {
            200: {
                "description": (
                    "Queued: `data.task_id`. Or an error with HTTP 200 and `error`: `code` 400 for a file"
                    " that is not an image or an unknown field, else the status `/v1/jobs` would answer."
                ),
                "headers": {"Retry-After": schemas.RETRY_AFTER},
                "content": json_content(
                    envelope_of(
                        {
                            "type": "object",
                            "properties": {"task_id": {"type": "string"}},
                            "required": ["task_id"],
                        }
                    )
                ),
            },
            422: {
                "description": "`quality` or `file` missing, or `quality` not a whole number from 20 to 100.",
                "content": json_content(ref("ValidationError")),
            },
        },
        envelope=True,
        accepted=params.TUTORIAL_UPLOAD,
        request_body=upload_body(params.TUTORIAL_UPLOAD, raw=False),
    ),
    seed.task: Operation(
        {
            200: {
                "description": (
                    "The task in Celery's terms: `PENDING` (also for an id it does not know) or `SUCCESS`"
                    " with the sizes. A failed task is an error with `code` 500 and the reason."
                ),
                "headers": {"Retry-After": schemas.RETRY_AFTER},
                "content": json_content(
                    envelope_of(
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "status": {"type": "string", "enum": seed.STATES},
                                "result": schemas.CELERY_RESULT,
                            },
                            "required": ["id", "status", "result"],
                        }
                    )
                ),
            }
        },
        envelope=True,
        parameters=[{**path_parameter("task_id"), "schema": {"type": "string"}}],
    ),
    seed.download: Operation(
        {
            200: {
                **schemas.IMAGE_RESPONSE,
                "description": (
                    "The compressed image; or, as JSON with `error`: not ready yet (`code` 400, also for an"
                    " unknown id), failed (400, with the reason), deleted or expired (500)."
                ),
                "headers": {**schemas.IMAGE_RESPONSE["headers"], "Retry-After": schemas.RETRY_AFTER},
                "content": {**schemas.IMAGE_RESPONSE["content"], **json_content(ref("EnvelopeError"))},
            },
            304: schemas.NOT_MODIFIED,
        },
        envelope=True,
        parameters=[{**path_parameter("task_id"), "schema": {"type": "string"}}, schemas.IF_NONE_MATCH],
    ),
    health.healthz: Operation(
        {
            200: {
                "description": "The process is up.",
                "content": json_content(
                    {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
                ),
            }
        }
    ),
    health.readyz: Operation(
        {
            200: {
                "description": "Redis answers and workers are registered.",
                "content": json_content(
                    {
                        "type": "object",
                        "properties": {
                            "status": {"const": "ready"},
                            "workers": {"type": "integer", "minimum": 1},
                        },
                        "required": ["status", "workers"],
                    }
                ),
            }
        },
        (errors.ServiceUnavailable,),
    ),
}
