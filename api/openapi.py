"""The OpenAPI 3.1 document, built from the definitions the code runs on, and `GET /openapi.json`
(docs/design.md, "OpenAPI")."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from api import auth, batches, capabilities, docs, health, jobs, observability, page, params, schemas, seed
from api.errors import STATUS
from api.params import Accepted
from api.schemas import (
    JSON,
    batch_body,
    components,
    envelope_of,
    json_content,
    path_parameter,
    query_parameters,
    ref,
    upload_body,
)
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


#: Each endpoint module's tag: what a user does with its routes.
TAGS: dict[str, tuple[str, str]] = {
    "jobs": ("Jobs", "Compress one image: upload it, wait for it or follow its events, download the result."),
    "batches": (
        "Batches",
        "Compress several images with the same options, follow them together, download them as one ZIP.",
    ),
    "seed": (
        "Original app",
        "The three routes of the FastAPI + Celery tutorial app imgpress grew from, answering as it did, "
        "so its clients and frontend keep working unchanged.",
    ),
    "capabilities": ("Limits", "Read what this server accepts before uploading: sizes, types, options."),
    "health": ("Health", "Ask whether the service is up and ready to take work (for load balancers)."),
    "observability": ("Metrics", "Scrape Prometheus metrics: requests, uploads, jobs, queues."),
    "openapi": ("Contract", "Read this contract, as JSON to generate a client from or as this page."),
    "page": ("Web page", "Compress images from a browser: drop them on the page."),
}


async def openapi_json(request: Request) -> Response:
    """GET /openapi.json: the OpenAPI 3.1 document of this API."""
    return JSONResponse(document(request.app.routes))


async def docs_page(request: Request) -> Response:
    """GET /docs: the same document as a plain HTML page that needs nothing from the network."""
    return HTMLResponse(docs.render(document(request.app.routes)))


OPERATIONS: dict[Endpoint, Operation] = {
    openapi_json: Operation(
        {200: {"description": "This document.", "content": json_content({"type": "object"})}}
    ),
    docs_page: Operation(
        {
            200: {
                "description": "The document as a page.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        }
    ),
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
            202: {
                **schemas.JOB_RESPONSE,
                "description": "Queued.",
                "headers": {"Location": schemas.LOCATION},
            },
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
        {
            202: {
                **schemas.JOB_RESPONSE,
                "description": "The new job, queued from the same stored upload.",
                "headers": {"Location": schemas.LOCATION},
            }
        },
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
        {
            202: {
                **schemas.BATCH_RESPONSE,
                "description": "Queued.",
                "headers": {"Location": schemas.LOCATION},
            }
        },
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


def tag_of(route: Route) -> tuple[str, str]:
    """The tag (name, what a user does with it) of a route: its endpoint module's entry in TAGS."""
    module = inspect.getmodule(route.endpoint)
    key = (module.__name__ if module else "").rsplit(".", 1)[-1]
    if key not in TAGS:
        raise KeyError(f"api.openapi.TAGS has no entry for the module {key!r} of {route.path}")
    return TAGS[key]


def first_line(text: str | None) -> str:
    """The first line of a docstring."""
    return inspect.cleandoc(text or "").split("\n", 1)[0]


def error_responses(operation: Operation) -> dict[str, JSON]:
    """The error responses of an operation, grouped by status, each code with its meaning."""
    by_status: dict[int, list[type[errors.ImgpressError]]] = {}
    for error in operation.raises:
        status = next(STATUS[cls] for cls in error.__mro__ if cls in STATUS)
        by_status.setdefault(status, []).append(error)
    body = ref("EnvelopeError") if operation.envelope else ref("Error")
    responses: dict[str, JSON] = {}
    for status, classes in sorted(by_status.items()):
        lines = []
        for cls in classes:
            code = "the failed job's own code" if cls is errors.JobFailed else f"`{cls.code}`"
            # The tree's docstrings speak to whoever edits the code ("Raised when ..."); a reader of
            # the API wants only the when.
            lines.append(f"{code}: {first_line(cls.__doc__).removeprefix('Raised when ')}")
        response: JSON = {"description": "\n".join(lines), "content": json_content(body)}
        if any(issubclass(cls, errors.ServiceUnavailable | errors.RateLimited) for cls in classes):
            response["headers"] = {"Retry-After": schemas.RETRY_AFTER}
        responses[str(status)] = response
    return responses


def operation_object(route: Route, method: str, operation: Operation) -> JSON:
    """The OpenAPI operation for one route and method."""
    doc = inspect.cleandoc(route.endpoint.__doc__ or "")
    heading, _, rest = doc.partition("\n")
    summary = heading.split(": ", 1)[-1]
    summary = summary[:1].upper() + summary[1:]
    result: JSON = {
        "operationId": f"{route.name}_{method.lower()}",
        "summary": summary,
        "tags": [tag_of(route)[0]],
        "responses": {str(status): body for status, body in operation.responses.items()},
    }
    result["responses"].update(error_responses(operation))
    if rest.strip():
        result["description"] = rest.strip()
    parameters = list(operation.parameters)
    if operation.accepted is not None:
        parameters += query_parameters(operation.accepted)
    if parameters:
        result["parameters"] = parameters
    if operation.request_body is not None:
        result["requestBody"] = operation.request_body
    if auth.is_protected(route.path):
        # Optional: only when the server has IMGPRESS_API_KEYS set.
        result["security"] = [{"apiKey": []}, {}]
        result["responses"]["401"] = {
            "description": "`unauthorized`: keys are required and none, or a wrong one, was sent.",
            "headers": {"WWW-Authenticate": {"description": "`Bearer`.", "schema": schemas.STRING}},
            "content": json_content(ref("EnvelopeError") if operation.envelope else ref("Error")),
        }
    # By status, as a reader looks them up.
    result["responses"] = dict(sorted(result["responses"].items()))
    return result


def document(routes: Iterable[BaseRoute]) -> JSON:
    """The OpenAPI 3.1 document for these routes; KeyError names a route OPERATIONS misses."""
    paths: dict[str, JSON] = {}
    tags: dict[str, str] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        operation = OPERATIONS.get(route.endpoint)
        if operation is None:
            raise KeyError(f"api.openapi.OPERATIONS has no entry for {route.path} ({route.name})")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = operation_object(route, method, operation)
            name, description = tag_of(route)
            tags[name] = description
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "imgpress",
            "version": version("imgpress"),
            "description": "Image compression as a service: upload, wait, download.",
        },
        "tags": [{"name": name, "description": text} for name, text in tags.items()],
        "paths": paths,
        "components": components(),
    }
