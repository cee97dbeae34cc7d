"""The OpenAPI 3.1 document, built from the definitions the code runs on, and `GET /openapi.json`
(docs/design.md, "OpenAPI")."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from importlib.metadata import version

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from api import auth, docs, operations, schemas
from api.errors import STATUS
from api.operations import Endpoint, Operation
from api.schemas import (
    JSON,
    components,
    json_content,
    query_parameters,
    ref,
)
from shared import errors

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
    **operations.OPERATIONS,
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
            raise KeyError(f"api.operations.OPERATIONS has no entry for {route.path} ({route.name})")
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
