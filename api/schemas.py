"""JSON Schemas for the OpenAPI document, derived from `shared/schema.py` and `shared.options`,
and the response objects the operations share."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Iterable
from typing import Any

from api import jobs
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
                "type": "object",
                "properties": {"data": {}, "message": {"type": "string"}, "code": {"type": "integer"}},
                "required": ["data", "message", "code"],
            },
        },
    }


def upload_body(min_quality: int | None = None, raw: bool = True) -> JSON:
    """The request body of an upload: multipart with options as fields, or the raw image."""
    form = options_schema(min_quality)
    form["properties"] = {"file": BINARY, **form["properties"]}
    form["required"] = ["file"]
    content: JSON = {"multipart/form-data": {"schema": form}}
    if raw:
        for media_type in [*FORMATS.values(), "application/octet-stream"]:
            content[media_type] = {"schema": BINARY}
    return {"required": True, "content": content}


def batch_body() -> JSON:
    """The request body of a batch: several `file` parts with shared options as fields."""
    form = options_schema()
    form["properties"] = {"file": {"type": "array", "items": BINARY}, **form["properties"]}
    form["required"] = ["file"]
    return {"required": True, "content": {"multipart/form-data": {"schema": form}}}


def envelope_of(data: JSON) -> JSON:
    """The origin app's envelope around `data`."""
    return {"allOf": [ref("Envelope"), {"type": "object", "properties": {"data": data}}]}


def path_parameter(name: str) -> JSON:
    """A job id in the path."""
    return {"name": name, "in": "path", "required": True, "schema": _JOB_ID}


WAIT: JSON = {
    "name": "wait",
    "in": "query",
    "description": "Seconds to hold the request until the job finishes or fails.",
    "schema": {"type": "number", "minimum": 0, "maximum": jobs.MAX_WAIT_SECONDS},
}
JOB_RESPONSE: JSON = {"description": "The job resource.", "content": json_content(ref("Job"))}
IMAGE_RESPONSE: JSON = {
    "description": "The compressed image, as an attachment.",
    "headers": {"ETag": {"schema": {"type": "string"}}},
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
