"""The OpenAPI 3.1 document, built from the definitions the code runs on, and `GET /openapi.json`.

Nothing here is a copy that can drift: paths and methods come from the app's routes, summaries
from the endpoints' docstrings, the job schema from the dataclasses in `shared/schema.py`,
options from `shared.options.FIELDS`, error statuses from `api.errors.STATUS` and error codes
from the classes in `shared/errors.py`. `OPERATIONS` adds what code cannot say (which errors an
endpoint raises, what it answers); building the document fails for a route it does not cover.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from api import auth, batches, docs, health, jobs, observability, page, seed
from api.errors import STATUS
from shared import errors, resources, schema
from shared.imaging import FORMATS
from shared.options import FIELDS, Options

JSON = dict[str, Any]
Endpoint = Callable[[Request], Any]

_PRIMITIVES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_BINARY: JSON = {"type": "string", "format": "binary"}
_JOB_ID: JSON = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_UPLOAD_ERRORS = (
    errors.BadOption,
    errors.TooLarge,
    errors.UnsupportedMedia,
    errors.CorruptImage,
    errors.StorageFull,
    errors.RateLimited,
    errors.ServiceUnavailable,
    errors.QueueFull,
)
_LOOKUP_ERRORS = (errors.JobNotFound, errors.JobExpired, errors.ServiceUnavailable)
_RESULT_ERRORS = (*_LOOKUP_ERRORS, errors.JobNotFinished, errors.JobFailed)
_BATCH_LOOKUP_ERRORS = (errors.BatchNotFound, errors.BatchExpired, errors.ServiceUnavailable)


def ref(name: str) -> JSON:
    """A reference to a schema in components."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema_: JSON) -> JSON:
    """A JSON response or request body content map."""
    return {"application/json": {"schema": schema_}}


@dataclass(frozen=True)
class Operation:
    """What the document says about one endpoint beyond its route and docstring."""

    #: Successful responses: status -> OpenAPI response object.
    responses: dict[int, JSON]
    #: The imgpress errors the endpoint can answer with.
    raises: tuple[type[errors.ImgpressError], ...] = ()
    #: Errors in the origin app's envelope instead of the v1 error body.
    envelope: bool = False
    parameters: list[JSON] = field(default_factory=list)
    request_body: JSON | None = None


def type_schema(hint: Any) -> JSON:
    """The JSON Schema of a Python type as `to_dict()` serialises it."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [type_schema(member) for member in typing.get_args(hint)]
        return {"anyOf": members}
    if hint is type(None):
        return {"type": "null"}
    if hint is Options:
        return ref("Options")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [member.value for member in hint]}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return ref(hint.__name__)
    if hint in _PRIMITIVES:
        return {"type": _PRIMITIVES[hint]}
    raise TypeError(f"no JSON Schema for {hint!r}")


def dataclass_schema(cls: type, extra: Iterable[str] = ()) -> JSON:
    """An object schema from a dataclass's fields (and `extra` properties), all required."""
    hints = typing.get_type_hints(cls)
    properties = {f.name: type_schema(hints[f.name]) for f in dataclasses.fields(cls)}
    for name in extra:
        getter = getattr(cls, name).fget
        properties[name] = type_schema(typing.get_type_hints(getter)["return"])
    result: JSON = {"type": "object", "properties": properties, "required": list(properties)}
    if cls.__doc__:
        result["description"] = cls.__doc__.strip()
    return result


def options_schema(min_quality: int | None = None) -> JSON:
    """The options object; the seed routes accept a narrower quality range."""
    properties = {name: {**spec.schema, "description": spec.description} for name, spec in FIELDS.items()}
    if min_quality is not None:
        properties["quality"] = {**properties["quality"], "minimum": min_quality}
    return {"type": "object", "properties": properties}


def stored_options_schema() -> JSON:
    """The options as a job resource shows them: the Options dataclass's own types (None = unset/auto)."""
    hints = typing.get_type_hints(Options)
    properties = {
        name: {**type_schema(hints[name]), "description": spec.description} for name, spec in FIELDS.items()
    }
    return {"type": "object", "properties": properties, "required": list(properties)}


def option_parameters() -> list[JSON]:
    """Each option as a query parameter (how raw uploads pass them)."""
    return [
        {"name": name, "in": "query", "description": spec.description, "schema": spec.schema}
        for name, spec in FIELDS.items()
    ]


def components() -> JSON:
    """Every named schema the operations refer to."""
    job = dataclass_schema(schema.Job, schema.DERIVED)
    for name in resources.PRIVATE_FIELDS:
        del job["properties"][name]
        job["required"].remove(name)
    job["properties"]["links"] = {
        "type": "object",
        "properties": {name: {"type": "string"} for name in ("self", "result", "input", "events")},
        "required": ["self", "result", "input", "events"],
    }
    job["required"].append("links")
    message = {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
    message["required"] = ["code", "message"]
    return {
        "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "An IMGPRESS_API_KEYS key."}
        },
        "schemas": {
            "Job": job,
            "InputInfo": dataclass_schema(schema.InputInfo),
            "OutputInfo": dataclass_schema(schema.OutputInfo),
            "JobError": dataclass_schema(schema.JobError),
            "Options": stored_options_schema(),
            "Error": {"type": "object", "properties": {"error": message}, "required": ["error"]},
            "Envelope": {
                "type": "object",
                "properties": {"data": {}, "message": {"type": "string"}, "code": {"type": "integer"}},
                "required": ["data", "message", "code"],
            },
        },
    }


def upload_body(min_quality: int | None = None, raw: bool = True) -> JSON:
    """The request body of an upload: multipart with options as fields, or the raw image."""
    form = options_schema(min_quality)
    form["properties"] = {"file": _BINARY, **form["properties"]}
    form["required"] = ["file"]
    content: JSON = {"multipart/form-data": {"schema": form}}
    if raw:
        for media_type in [*FORMATS.values(), "application/octet-stream"]:
            content[media_type] = {"schema": _BINARY}
    return {"required": True, "content": content}


def batch_body() -> JSON:
    """The request body of a batch: several `file` parts with shared options as fields."""
    form = options_schema()
    form["properties"] = {"file": {"type": "array", "items": _BINARY}, **form["properties"]}
    form["required"] = ["file"]
    return {"required": True, "content": {"multipart/form-data": {"schema": form}}}


def envelope_of(data: JSON) -> JSON:
    """The origin app's envelope around `data`."""
    return {"allOf": [ref("Envelope"), {"type": "object", "properties": {"data": data}}]}


def path_parameter(name: str) -> JSON:
    """A job id in the path."""
    return {"name": name, "in": "path", "required": True, "schema": _JOB_ID}


_WAIT: JSON = {
    "name": "wait",
    "in": "query",
    "description": "Seconds to hold the request until the job finishes or fails.",
    "schema": {"type": "number", "minimum": 0, "maximum": jobs.MAX_WAIT_SECONDS},
}
_JOB_RESPONSE: JSON = {"description": "The job resource.", "content": json_content(ref("Job"))}
_IMAGE_RESPONSE: JSON = {
    "description": "The compressed image, as an attachment.",
    "headers": {"ETag": {"schema": {"type": "string"}}},
    "content": {media_type: {"schema": _BINARY} for media_type in FORMATS.values()},
}
_EVENT_STREAM: JSON = {
    "description": "Server-Sent Events: the current state at once, then one event per change, until the end.",
    "content": {
        "text/event-stream": {
            # One event: its name is the status, its data the JSON resource.
            "schema": {
                "type": "object",
                "properties": {
                    "event": {"type": "string"},
                    "data": {"type": "string", "contentMediaType": "application/json"},
                    "id": {"type": "string"},
                },
                "required": ["event", "data"],
            }
        }
    },
}
_BATCH_RESPONSE: JSON = {
    "description": "The batch resource: its jobs, counts by status, byte totals.",
    "content": json_content(
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": ["running", "finished"]},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "total": {"type": "integer"},
                "input_bytes": {"type": "integer"},
                "output_bytes": {"type": "integer"},
                "jobs": {"type": "array", "items": ref("Job")},
                "rejected": {"type": "array", "items": {"type": "object"}},
                "links": {"type": "object"},
            },
            "required": ["id", "status", "counts", "total", "jobs", "rejected", "links"],
        }
    ),
}
_NOT_MODIFIED: JSON = {"description": "The client's copy (If-None-Match) is current."}
_CELERY_RESULT: JSON = {
    "anyOf": [
        {"type": "null"},
        {
            "type": "object",
            "properties": {
                "download_url": {"type": "string"},
                "old_filesize": {"type": "integer"},
                "new_filesize": {"type": "integer"},
            },
            "required": ["download_url", "old_filesize", "new_filesize"],
        },
        {
            "type": "object",
            "properties": {"error": {"type": "string"}, "error_code": {"type": "string"}},
            "required": ["error", "error_code"],
        },
    ]
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
            200: {**_JOB_RESPONSE, "description": "Ended (finished or failed) within ?wait= seconds."},
            202: {
                **_JOB_RESPONSE,
                "description": "Queued.",
                "headers": {"Location": {"schema": {"type": "string"}}},
            },
        },
        _UPLOAD_ERRORS,
        parameters=[
            *option_parameters(),
            _WAIT,
            {
                "name": "filename",
                "in": "query",
                "description": "Display name of a raw upload.",
                "schema": {"type": "string"},
            },
        ],
        request_body=upload_body(),
    ),
    jobs.get_job: Operation(
        {200: _JOB_RESPONSE},
        (errors.BadOption, *_LOOKUP_ERRORS),
        parameters=[
            path_parameter("job_id"),
            _WAIT,
        ],
    ),
    jobs.delete_job: Operation(
        {204: {"description": "Deleted; the id answers 410 from now on."}},
        _LOOKUP_ERRORS,
        parameters=[path_parameter("job_id")],
    ),
    jobs.get_result: Operation(
        {200: _IMAGE_RESPONSE, 304: _NOT_MODIFIED}, _RESULT_ERRORS, parameters=[path_parameter("job_id")]
    ),
    jobs.get_input: Operation(
        {200: {**_IMAGE_RESPONSE, "description": "The image as uploaded (kept while the job lives)."}},
        _LOOKUP_ERRORS,
        parameters=[path_parameter("job_id")],
    ),
    jobs.job_events: Operation(
        {200: _EVENT_STREAM},
        _LOOKUP_ERRORS,
        parameters=[path_parameter("job_id")],
    ),
    batches.create_batch: Operation(
        {
            202: {
                **_BATCH_RESPONSE,
                "description": "Queued.",
                "headers": {"Location": {"schema": {"type": "string"}}},
            }
        },
        _UPLOAD_ERRORS,
        request_body=batch_body(),
    ),
    batches.get_batch: Operation(
        {200: _BATCH_RESPONSE}, _BATCH_LOOKUP_ERRORS, parameters=[path_parameter("batch_id")]
    ),
    batches.delete_batch: Operation(
        {204: {"description": "Deleted with its jobs; the id answers 410 from now on."}},
        _BATCH_LOOKUP_ERRORS,
        parameters=[path_parameter("batch_id")],
    ),
    batches.batch_events: Operation(
        {200: _EVENT_STREAM}, _BATCH_LOOKUP_ERRORS, parameters=[path_parameter("batch_id")]
    ),
    batches.get_archive: Operation(
        {
            200: {
                "description": "A ZIP of the batch's finished outputs, streamed.",
                "content": {"application/zip": {"schema": _BINARY}},
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
    page.index: Operation(
        {200: {"description": "The web page.", "content": {"text/html": {"schema": {"type": "string"}}}}}
    ),
    seed.upload: Operation(
        {
            200: {
                "description": "Queued.",
                "content": json_content(
                    envelope_of(
                        {
                            "type": "object",
                            "properties": {"task_id": {"type": "string"}},
                            "required": ["task_id"],
                        }
                    )
                ),
            }
        },
        _UPLOAD_ERRORS,
        envelope=True,
        request_body=upload_body(seed.SEED_MIN_QUALITY, raw=False),
    ),
    seed.task: Operation(
        {
            200: {
                "description": "The job in Celery's terms.",
                "content": json_content(
                    envelope_of(
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "status": {"type": "string", "enum": list(seed.CELERY_STATES.values())},
                                "result": _CELERY_RESULT,
                            },
                            "required": ["id", "status", "result"],
                        }
                    )
                ),
            }
        },
        _LOOKUP_ERRORS,
        envelope=True,
        parameters=[path_parameter("task_id")],
    ),
    seed.download: Operation(
        {200: _IMAGE_RESPONSE, 304: _NOT_MODIFIED},
        _RESULT_ERRORS,
        envelope=True,
        parameters=[path_parameter("task_id")],
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


def first_line(text: str | None) -> str:
    """The first line of a docstring."""
    return inspect.cleandoc(text or "").split("\n", 1)[0]


def error_responses(operation: Operation) -> dict[str, JSON]:
    """The error responses of an operation, grouped by status, each code with its meaning."""
    by_status: dict[int, list[type[errors.ImgpressError]]] = {}
    for error in operation.raises:
        status = next(STATUS[cls] for cls in error.__mro__ if cls in STATUS)
        by_status.setdefault(status, []).append(error)
    body = ref("Envelope") if operation.envelope else ref("Error")
    responses: dict[str, JSON] = {}
    for status, classes in sorted(by_status.items()):
        lines = []
        for cls in classes:
            code = "the failed job's own code" if cls is errors.JobFailed else f"`{cls.code}`"
            lines.append(f"{code}: {first_line(cls.__doc__)}")
        response: JSON = {"description": "\n".join(lines), "content": json_content(body)}
        if any(issubclass(cls, errors.ServiceUnavailable | errors.RateLimited) for cls in classes):
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        responses[str(status)] = response
    return responses


def operation_object(route: Route, method: str, operation: Operation) -> JSON:
    """The OpenAPI operation for one route and method."""
    doc = inspect.cleandoc(route.endpoint.__doc__ or "")
    heading, _, rest = doc.partition("\n")
    summary = heading.split(": ", 1)[-1]
    summary = summary[:1].upper() + summary[1:]
    module = inspect.getmodule(route.endpoint)
    result: JSON = {
        "operationId": f"{route.name}_{method.lower()}",
        "summary": summary,
        "tags": [(module.__name__ if module else "api").rsplit(".", 1)[-1]],
        "responses": {str(status): body for status, body in operation.responses.items()},
    }
    result["responses"].update(error_responses(operation))
    if rest.strip():
        result["description"] = rest.strip()
    if operation.parameters:
        result["parameters"] = operation.parameters
    if operation.request_body is not None:
        result["requestBody"] = operation.request_body
    if route.path.startswith(auth.PROTECTED_PREFIXES):
        # Optional: only when the server has IMGPRESS_API_KEYS set.
        result["security"] = [{"apiKey": []}, {}]
        result["responses"]["401"] = {
            "description": "`unauthorized`: keys are required and none, or a wrong one, was sent.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": json_content(ref("Envelope") if operation.envelope else ref("Error")),
        }
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
            entry = operation_object(route, method, operation)
            paths.setdefault(route.path, {})[method.lower()] = entry
            module = inspect.getmodule(route.endpoint)
            if module is not None:
                tags[entry["tags"][0]] = first_line(module.__doc__)
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
