"""The OpenAPI document covers every route and describes what the API really answers."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from api.app import routes
from api.openapi import document
from shared import options
from tests import images


def check(doc: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    """Validate a JSON body against the document's schema for that response."""
    schema = doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    validator = jsonschema_rs.validator_for({**schema, "components": doc["components"]})
    errors = [error.message for error in validator.iter_errors(body)]
    assert errors == [], f"{method} {path} {status}: {errors}"


def test_every_route_and_method_is_in_the_document() -> None:
    doc = document(routes)
    for route in routes:
        if isinstance(route, Mount):
            # The page's static assets are files, not API operations.
            assert isinstance(route.app, StaticFiles), route.path
            continue
        assert isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}:
            operation = doc["paths"][route.path][method.lower()]
            assert operation["summary"] and operation["responses"]
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(route.param_convertors), route.path


def test_a_route_without_an_operation_is_refused() -> None:
    async def stray(request: Request) -> Response:
        """GET /stray: not described anywhere."""
        return Response()

    with pytest.raises(KeyError, match="/stray"):
        document([*routes, Route("/stray", stray)])


def test_every_option_field_is_described() -> None:
    names = [f.name for f in dataclasses.fields(options.Options)]
    assert list(options.FIELDS) == names
    query = {p["name"] for p in document(routes)["paths"]["/v1/jobs"]["post"]["parameters"]}
    assert set(names) <= query


def test_document_is_served_and_real_responses_match_it(
    client: TestClient, run_jobs: Callable[[], None]
) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    created = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data={"quality": "60"})
    check(doc, "/v1/jobs", "post", 202, created.json())
    job_id = created.json()["id"]
    check(doc, "/v1/jobs/{job_id}", "get", 200, client.get(f"/v1/jobs/{job_id}").json())
    task = client.post("/upload", files={"file": ("a.jpg", images.jpeg())}, data={"quality": "60"}).json()
    check(doc, "/upload", "post", 200, task)
    run_jobs()
    finished = client.get(f"/v1/jobs/{job_id}").json()
    assert finished["status"] == "finished"
    check(doc, "/v1/jobs/{job_id}", "get", 200, finished)
    check(doc, "/task/{task_id}", "get", 200, client.get(f"/task/{task['data']['task_id']}").json())
    check(doc, "/healthz", "get", 200, client.get("/healthz").json())
    missing = client.get("/v1/jobs/" + "0" * 32)
    check(doc, "/v1/jobs/{job_id}", "get", missing.status_code, missing.json())
    bad = client.post("/v1/jobs", content=b"not an image", headers={"content-type": "image/png"})
    check(doc, "/v1/jobs", "post", bad.status_code, bad.json())


def test_a_schema_that_disagrees_with_a_response_is_caught(client: TestClient) -> None:
    doc = document(routes)
    body = client.get("/healthz").json()
    doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "required": ["missing"],
    }
    with pytest.raises(AssertionError):
        check(doc, "/healthz", "get", 200, body)


def test_docs_page_shows_every_operation_and_loads_nothing_from_elsewhere(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for path in document(routes)["paths"]:
        assert f"<code>{path}</code>" in page
    assert 'id="schema-Job"' in page and "saved_ratio" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page


def test_key_protected_routes_declare_the_key_and_401_and_uploads_declare_429() -> None:
    paths = document(routes)["paths"]
    assert paths["/v1/jobs"]["post"]["security"] == [{"apiKey": []}, {}]
    assert "401" in paths["/task/{task_id}"]["get"]["responses"]
    assert "security" not in paths["/healthz"]["get"] and "401" not in paths["/healthz"]["get"]["responses"]
    limited = paths["/v1/jobs"]["post"]["responses"]["429"]
    assert "rate_limited" in limited["description"] and "Retry-After" in limited["headers"]
    assert "queue_full" in paths["/v1/jobs"]["post"]["responses"]["503"]["description"]
