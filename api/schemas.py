"""JSON Schemas for the OpenAPI document, derived from `shared/schema.py` and `shared.options`,
and the response objects the operations share."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Iterable
from typing import Any

from api.errors import ENVELOPE_ERROR
from api.params import FORM, QUERY, Accepted
from screening.imaging import FORMATS
from shared import resources, schema
from shared.options import FIELDS, Options

JSON = dict[str, Any]

_PRIMITIVES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
BINARY: JSON = {"type": "string", "format": "binary"}
_JOB_ID: JSON = {"type": "string", "pattern": "^[0-9a-f]{32}$"}


def ref(name: str) -> JSON:
    """A reference to a schema in components."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema_: JSON) -> JSON:
    """A JSON response or request body content map."""
    return {"application/json": {"schema": schema_}}


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


def stored_options_schema() -> JSON:
    """The options as a job resource shows them: the Options dataclass's own types (None = unset),
    but `quality`, which is 1-100 or "auto"."""
    hints = typing.get_type_hints(Options)
    properties = {
        name: {**type_schema(hints[name]), "description": spec.description} for name, spec in FIELDS.items()
    }
    properties["quality"]["anyOf"] = [{"type": "integer", "minimum": 1, "maximum": 100}, {"const": "auto"}]
    return {"type": "object", "properties": properties, "required": list(properties)}


def query_parameters(accepted: Accepted) -> list[JSON]:
    """The route's query parameters (options, `wait`, `callback_url`, ...), as api.params declares them."""
    return [
        {"name": p.name, "in": "query", "description": p.description, "schema": p.schema}
        | ({"required": True} if p.required else {})
        for p in accepted.params
        if QUERY in p.places
    ]


def fields_schema(accepted: Accepted) -> JSON:
    """The form fields a route reads, as one object schema."""
    fields = [p for p in accepted.params if FORM in p.places]
    properties = {p.name: {**p.schema, "description": p.description} for p in fields}
    return {"type": "object", "properties": properties, "required": [p.name for p in fields if p.required]}


def form_schema(accepted: Accepted, file: JSON) -> JSON:
    """The multipart form of an upload: `file`, then every field the route reads from the form."""
    form = fields_schema(accepted)
    return {
        **form,
        "properties": {"file": file, **form["properties"]},
        "required": ["file", *form["required"]],
    }


def components() -> JSON:
    """Every named schema the operations refer to."""
    job = dataclass_schema(schema.Job, schema.DERIVED)
    for name in resources.PRIVATE_FIELDS:
        del job["properties"][name]
        job["required"].remove(name)
    job["properties"]["links"] = {
        "type": "object",
        "properties": {name: {"type": "string"} for name in resources.job_links("")},
        "required": list(resources.job_links("")),
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
                "description": "A success on the original app's routes.",
                "type": "object",
                "properties": {"data": {}, "message": {"type": "string"}, "code": {"const": 200}},
                "required": ["data", "message", "code"],
            },
            "EnvelopeError": {
                "description": "An error on the original app's routes: HTTP 200, the status in `code`.",
                "type": "object",
                "properties": {
                    "error": {"const": ENVELOPE_ERROR},
                    "message": {"type": "string"},
                    "code": {"type": "integer"},
                },
                "required": ["error", "message", "code"],
            },
            "ValidationError": {
                "description": "A form the original app's `POST /upload` refuses, in FastAPI's words.",
                "type": "object",
                "properties": {
                    "detail": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string"},
                                "loc": {"type": "array", "items": {"type": "string"}},
                                "msg": {"type": "string"},
                                "input": {},
                                "ctx": {"type": "object"},
                            },
                            "required": ["type", "loc", "msg", "input"],
                        },
                    }
                },
                "required": ["detail"],
            },
        },
    }


def upload_body(accepted: Accepted, raw: bool = True) -> JSON:
    """The request body of an upload: multipart with options as fields, or the raw image."""
    content: JSON = {"multipart/form-data": {"schema": form_schema(accepted, BINARY)}}
    if raw:
        for media_type in [*FORMATS.values(), "application/octet-stream"]:
            content[media_type] = {"schema": BINARY}
    return {"required": True, "content": content}


def batch_body(accepted: Accepted) -> JSON:
    """The request body of a batch: several `file` parts with shared options as fields."""
    form = form_schema(accepted, {"type": "array", "items": BINARY})
    return {"required": True, "content": {"multipart/form-data": {"schema": form}}}


def envelope_of(data: JSON) -> JSON:
    """The original app's answer: `data` in its envelope, or an error in its error envelope."""
    success = {"allOf": [ref("Envelope"), {"type": "object", "properties": {"data": data}}]}
    return {"anyOf": [success, ref("EnvelopeError")]}


def path_parameter(name: str) -> JSON:
    """A job id in the path."""
    return {"name": name, "in": "path", "required": True, "schema": _JOB_ID}


STRING: JSON = {"type": "string"}
RETRY_AFTER: JSON = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
LOCATION: JSON = {"description": "The job's (or batch's) URL.", "schema": STRING}
IMGPRESS_JOB: JSON = {
    "description": "The job resource as compact JSON (see the `Job` schema), sent with an image answer.",
    "schema": {"type": "string", "contentMediaType": "application/json"},
}
IF_NONE_MATCH: JSON = {
    "name": "If-None-Match",
    "in": "header",
    "description": "The `ETag` of a copy the client holds: 304 if it is still current.",
    "schema": STRING,
}
CONTENT_DISPOSITION: JSON = {
    "name": "Content-Disposition",
    "in": "header",
    "description": "A raw upload's file name (`attachment; filename=...`), unless `filename` is given.",
    "schema": STRING,
}
JOB_RESPONSE: JSON = {"description": "The job resource.", "content": json_content(ref("Job"))}
IMAGE_RESPONSE: JSON = {
    "description": "The compressed image, as an attachment.",
    "headers": {
        "ETag": {"description": "Send it back in `If-None-Match` to get 304.", "schema": STRING},
        "Content-Disposition": {"description": "`attachment` with a safe file name.", "schema": STRING},
    },
    "content": {media_type: {"schema": BINARY} for media_type in FORMATS.values()},
}
EVENT_STREAM: JSON = {
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
UPLOAD_INDEX: JSON = {
    "type": ["integer", "null"],
    "minimum": 0,
    "description": "The file's position among the request's `file` parts (0 is the first).",
}
REJECTED: JSON = {
    "type": "object",
    "properties": {"index": UPLOAD_INDEX, "filename": {"type": "string"}, "error": ref("JobError")},
    "required": ["index", "filename", "error"],
}
LIMITS_RESPONSE: JSON = {
    "description": "What this server accepts.",
    "content": json_content(
        {
            "type": "object",
            "properties": {
                "max_upload_bytes": {"type": "integer", "description": "Largest file, in bytes."},
                "max_pixels": {"type": "integer", "description": "Largest width × height."},
                "max_batch_files": {"type": "integer", "description": "Most `file` parts in one batch."},
                "retention_seconds": {"type": "integer", "description": "How long results are kept."},
                "media_types": {"type": "array", "items": {"type": "string"}},
                "formats": {"type": "array", "items": {"type": "string"}},
                "targets": {"type": "array", "items": {"type": "string"}},
                "fits": {"type": "array", "items": {"type": "string"}},
                "efforts": {"type": "array", "items": {"type": "string"}},
                "max_side": {"type": "integer"},
            },
            "required": [
                "max_upload_bytes",
                "max_pixels",
                "max_batch_files",
                "retention_seconds",
                "media_types",
            ],
        }
    ),
}
BATCH_RESPONSE: JSON = {
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
                "jobs": {
                    "type": "array",
                    "description": "Job resources in upload order, each with `index`.",
                    "items": {
                        "allOf": [
                            ref("Job"),
                            {
                                "type": "object",
                                "properties": {"index": UPLOAD_INDEX},
                                "required": ["index"],
                            },
                        ]
                    },
                },
                "rejected": {
                    "type": "array",
                    "description": "Files refused before they became jobs (the others went on).",
                    "items": REJECTED,
                },
                "links": {"type": "object"},
            },
            "required": ["id", "status", "counts", "total", "jobs", "rejected", "links"],
        }
    ),
}
NOT_MODIFIED: JSON = {"description": "The client's copy (If-None-Match) is current."}
CELERY_RESULT: JSON = {
    "anyOf": [
        {"type": "null"},
        {
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The file's name (never a server path)."},
                "old_filesize": {"type": "integer"},
                "new_filesize": {"type": "integer"},
                "download_url": {"type": "string"},
            },
            "required": ["file_path", "old_filesize", "new_filesize", "download_url"],
        },
    ]
}
