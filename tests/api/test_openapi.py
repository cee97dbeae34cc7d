"""The OpenAPI document covers every route and describes what the API really answers."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema_rs
import pytest
from openapi_spec_validator import validate
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from api import batches, docs, health, jobs, observability, openapi, params, seed
from api.app import routes
from api.openapi import document, first_line
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


def test_the_document_passes_openapi_spec_validator(client: TestClient) -> None:
    validate(client.get("/openapi.json").json())


def header_objects(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every header the document describes (response headers and header parameters), with where."""
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            for status, response in operation["responses"].items():
                for name, header in response.get("headers", {}).items():
                    yield f"{method} {path} {status} {name}", header
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "header":
                    yield f"{method} {path} {parameter['name']}", parameter


def test_every_header_has_a_schema_and_says_what_it_is() -> None:
    headers = list(header_objects(document(routes)))
    assert "post /v1/jobs 200 Imgpress-Job" in dict(headers)
    for where, header in headers:
        assert header.get("schema", {}).get("type") in ("string", "integer"), where
        assert header.get("description"), where


def documented_names(operation: dict[str, Any]) -> set[str]:
    """The query parameters and form fields an operation's documentation lists."""
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
    if form:
        names |= set(form["schema"]["properties"]) - {"file"}
    return names


def test_every_name_the_server_reads_is_documented(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, run_jobs: Callable[[], None]
) -> None:
    """Records every query or form name the endpoints read while serving real requests, then looks
    each one up in the document: what the code reads, not a list, decides what must be there."""
    read: dict[tuple[str, str], set[str]] = {}
    serving: list[tuple[str, str]] = []
    original = params.Fields.__getitem__

    def recording(self: params.Fields, name: str) -> str:
        read.setdefault(serving[-1], set()).add(name)
        return original(self, name)

    monkeypatch.setattr(params.Fields, "__getitem__", recording)

    def call(method: str, template: str, path: str, **kwargs: Any) -> Any:
        serving.append((method, template))
        return client.request(method.upper(), path, **kwargs)

    jpeg = {"file": ("a.jpg", images.jpeg())}
    raw = call(
        "post", "/v1/jobs", "/v1/jobs?wait=0.1", content=images.jpeg(), headers={"content-type": "image/jpeg"}
    )
    job_id = raw.json()["id"]
    call("post", "/v1/jobs", "/v1/jobs", files=jpeg, data={"quality": "60"})
    call("post", "/v1/batches", "/v1/batches", files=[("file", ("a.jpg", images.jpeg()))] * 2)
    task_id = call("post", "/upload", "/upload", files=jpeg, data={"quality": "60"}).json()["data"]["task_id"]
    run_jobs()
    for template in ("/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result", "/v1/jobs/{job_id}/input"):
        call("get", template, template.format(job_id=job_id) + "?wait=0.1")
    for template in ("/task/{task_id}", "/download/{task_id}"):
        call("get", template, template.format(task_id=task_id))
    doc = document(routes)
    for (method, template), names in read.items():
        assert names <= documented_names(doc["paths"][template][method]), (method, template)
    # The uploads read every option whether sent or not, so this cannot pass by reading nothing.
    assert {*options.FIELDS, "wait", "filename", "callback_url"} <= read[("post", "/v1/jobs")]
    assert {*options.FIELDS, "callback_url"} <= read[("post", "/v1/batches")]
    assert set(options.FIELDS) <= read[("post", "/upload")]
    assert read[("get", "/v1/jobs/{job_id}")] == {"wait"}


def test_docs_page_renders_code_spans_and_only_safe_links(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "`" not in page
    assert "<code>Content-Disposition</code>" in page and "<code>http(s)</code>" in page
    hostile = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1", "description": "[home](/docs) `a<b`"},
        "tags": [
            {"name": "x", "description": "[x](javascript:alert(1)) <script>alert(2)</script> [`q`](#q)"}
        ],
        "paths": {},
    }
    html = docs.render(hostile)
    assert "<script" not in html and 'href="javascript' not in html
    assert '<a href="/docs" rel="noopener noreferrer">home</a>' in html and "<code>a&lt;b</code>" in html
    assert '<a href="#q" rel="noopener noreferrer"><code>q</code></a>' in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_tags_say_what_a_user_does_with_the_routes() -> None:
    doc = document(routes)
    tags = {tag["name"]: tag["description"] for tag in doc["tags"]}
    used = {operation["tags"][0] for methods in doc["paths"].values() for operation in methods.values()}
    assert set(tags) == used
    assert tags == {name: text for name, text in openapi.TAGS.values() if name in used}
    # Not the modules' docstrings, which are written for whoever edits the code.
    docstrings = {first_line(module.__doc__) for module in (jobs, batches, seed, health, observability)}
    assert not docstrings & set(tags.values())
