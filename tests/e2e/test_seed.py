"""The original app's routes against the real processes: each case the original handles, replayed,
answers with the body and status the original gave (recorded from faruqsandi/image_compression_webapp
at c67dec5 on FastAPI 0.111.1, pydantic 2.8.2, Celery 5.4.0), except where docs/api.md says why not."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.uploads import clean_filename
from tests import images
from tests.redis_servers import DatabasePool
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.e2e

#: Where the original app's Next.js frontend runs in development.
FRONTEND = "http://localhost:3000"
UPLOADED = {"data": {"task_id": "<id>"}, "message": "File uploaded successfully", "code": 200}
PENDING = {
    "data": {"id": "<id>", "status": "PENDING", "result": None},
    "message": "Task status retrieved successfully",
    "code": 200,
}
NOT_AN_IMAGE = {"error": "An error occurred", "message": "File is not an image", "code": 400}
NOT_READY = {
    "error": "An error occurred",
    "message": "File is not ready for download yet. Please try again later",
    "code": 400,
}
DELETED = {
    "error": "An error occurred",
    "message": "File is already deleted, please try to upload again",
    "code": 500,
}


def problem(kind: str, field: str, message: str, given: str | None, **ctx: int) -> dict[str, Any]:
    """One entry of FastAPI's 422 `detail`, as the original answered it."""
    entry: dict[str, Any] = {"type": kind, "loc": ["body", field], "msg": message, "input": given}
    if ctx:
        entry["ctx"] = ctx
    return entry


MISSING_QUALITY = problem("missing", "quality", "Field required", None)
MISSING_FILE = problem("missing", "file", "Field required", None)
NOT_AN_INTEGER = "Input should be a valid integer, unable to parse string as an integer"
TOO_HIGH = "Input should be less than or equal to 100"
TOO_LOW = "Input should be greater than or equal to 20"
#: quality as sent -> the original's 422 detail, or None where it accepted the upload.
QUALITY_CASES: dict[str | None, list[dict[str, Any]] | None] = {
    "150": [problem("less_than_equal", "quality", TOO_HIGH, "150", le=100)],
    "10": [problem("greater_than_equal", "quality", TOO_LOW, "10", ge=20)],
    "abc": [problem("int_parsing", "quality", NOT_AN_INTEGER, "abc")],
    "50.5": [problem("int_parsing", "quality", NOT_AN_INTEGER, "50.5")],
    "auto": [problem("int_parsing", "quality", NOT_AN_INTEGER, "auto")],
    "": [MISSING_QUALITY],
    None: [MISSING_QUALITY],
    "50.0": None,
    " 50 ": None,
    "20": None,
    "100": None,
}


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("seed"), cors_origins=(FRONTEND,))


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def with_id(expected: dict[str, Any], task_id: str) -> dict[str, Any]:
    """An expected body with its "<id>" placeholder filled in."""
    data = expected.get("data")
    if not isinstance(data, dict):
        return expected
    return {**expected, "data": {key: task_id if value == "<id>" else value for key, value in data.items()}}


def upload(http: httpx.Client, body: bytes = b"", name: str = "a.jpg", **form: str) -> httpx.Response:
    return http.post("/upload", files={"file": (name, body or images.jpeg(), "image/jpeg")}, data=form)


def test_success_then_status_then_download(http: httpx.Client) -> None:
    # Decomposed accents, quotes and more than 200 characters: the name is kept, as a name.
    name = 'cafe\u0301 "vieux" l\'e\u0301te\u0301 ' + "x" * 220 + ".jpg"
    response = upload(http, name=name, quality="50")
    assert response.status_code == 200
    task_id = response.json()["data"]["task_id"]
    assert response.json() == with_id(UPLOADED, task_id)
    assert eventually(lambda: http.get(f"/task/{task_id}").json()["data"]["status"] == "SUCCESS")
    done = http.get(f"/task/{task_id}")
    assert done.status_code == 200
    body = done.json()
    assert body["message"] == PENDING["message"] and body["code"] == 200
    result = body["data"]["result"]
    # The original's keys, with a name instead of its server path, and one more: where to download.
    # httpx, like browsers, sends a quote in a form's file name as %22: the server undoes it.
    assert result["file_path"] == clean_filename(name)
    assert result["file_path"].startswith('café "vieux" l\'été xxx') and result["file_path"].endswith("x.jpg")
    assert result["old_filesize"] == len(images.jpeg())
    assert 0 < result["new_filesize"] < result["old_filesize"]
    assert result["download_url"] == f"/download/{task_id}"
    download = http.get(f"/download/{task_id}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/jpeg"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert len(download.content) == result["new_filesize"]


def test_not_an_image_is_an_error_with_http_200(http: httpx.Client) -> None:
    for name, body in (("a.txt", b"hello world"), ("page.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")):
        response = http.post("/upload", files={"file": (name, body, "text/plain")}, data={"quality": "50"})
        assert (response.status_code, response.json()) == (200, NOT_AN_IMAGE)


@pytest.mark.parametrize("quality", list(QUALITY_CASES))
def test_quality_is_checked_as_fastapi_did(http: httpx.Client, quality: str | None) -> None:
    response = upload(http) if quality is None else upload(http, quality=quality)
    detail = QUALITY_CASES[quality]
    if detail is None:
        assert response.status_code == 200 and response.json()["data"]["task_id"]
    else:
        assert (response.status_code, response.json()) == (422, {"detail": detail})


def test_a_missing_file_or_a_raw_body_is_fastapis_422(http: httpx.Client) -> None:
    def form(**fields: str) -> httpx.Response:
        # A multipart body without a file part, as a browser's FormData sends it.
        return http.post("/upload", files={name: (None, value) for name, value in fields.items()})

    assert (form(quality="50").status_code, form(quality="50").json()) == (422, {"detail": [MISSING_FILE]})
    too_high = problem("less_than_equal", "quality", TOO_HIGH, "500", le=100)
    assert form(quality="500").json() == {"detail": [too_high, MISSING_FILE]}
    raw = http.post("/upload", content=images.jpeg(), headers={"content-type": "image/jpeg"})
    assert (raw.status_code, raw.json()) == (422, {"detail": [MISSING_QUALITY, MISSING_FILE]})


def test_unknown_ids_are_pending_and_not_ready(http: httpx.Client) -> None:
    for task_id in ("0" * 32, "3663cc8f-8ceb-4b36-ab24-67277424bc7b", "not-an-id"):
        status = http.get(f"/task/{task_id}")
        assert (status.status_code, status.json()) == (200, with_id(PENDING, task_id))
        download = http.get(f"/download/{task_id}")
        assert (download.status_code, download.json()) == (200, NOT_READY)


def test_not_ready_while_no_worker_runs(stack: Stack, http: httpx.Client) -> None:
    worker = stack.processes["worker"]
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    try:
        task_id = upload(http, quality="60").json()["data"]["task_id"]
        assert http.get(f"/task/{task_id}").json() == with_id(PENDING, task_id)
        download = http.get(f"/download/{task_id}")
        assert (download.status_code, download.json()) == (200, NOT_READY)
    finally:
        stack.start_worker()
        stack.wait_ready()
    assert eventually(lambda: http.get(f"/task/{task_id}").json()["data"]["status"] == "SUCCESS")


def test_deleted_is_pending_and_already_deleted(http: httpx.Client) -> None:
    task_id = upload(http, quality="60").json()["data"]["task_id"]
    assert eventually(lambda: http.get(f"/task/{task_id}").json()["data"]["status"] == "SUCCESS")
    assert http.delete(f"/v1/jobs/{task_id}").status_code == 204
    # The original forgets a task once its file is deleted: Celery then calls it PENDING.
    assert http.get(f"/task/{task_id}").json() == with_id(PENDING, task_id)
    download = http.get(f"/download/{task_id}")
    assert (download.status_code, download.json()) == (200, DELETED)


def test_failed_is_an_error_with_its_reason(http: httpx.Client) -> None:
    task_id = upload(http, images.jpeg()[:2000], quality="60").json()["data"]["task_id"]
    assert eventually(lambda: "error" in http.get(f"/task/{task_id}").json())
    status = http.get(f"/task/{task_id}")
    body = status.json()
    assert status.status_code == 200 and set(body) == {"error", "message", "code"}
    assert body["error"] == "An error occurred" and body["code"] == 500
    assert "corrupt" in body["message"].lower() or "truncated" in body["message"].lower()
    download = http.get(f"/download/{task_id}")
    assert download.status_code == 200 and download.json() == {**body, "code": 400}


def test_unknown_fields_are_refused_by_name(http: httpx.Client) -> None:
    response = upload(http, quality="50", qualty="3")
    assert response.status_code == 200
    assert response.json() == {
        "error": "An error occurred",
        "message": "Unknown option 'qualty'; did you mean 'quality'?",
        "code": 400,
    }
    form = {"quality": "50"}
    in_query = http.post("/upload?format=webp", files={"file": ("a.jpg", images.jpeg())}, data=form)
    assert in_query.json()["code"] == 400 and "'format' goes in the form" in in_query.json()["message"]
    extra = upload(http, quality="50", format="webp", width="100")
    assert extra.json()["code"] == 200


def test_its_frontend_may_call_it_from_another_origin(http: httpx.Client) -> None:
    """With IMGPRESS_CORS_ORIGINS set to the frontend's origin, a browser lets its script read
    every answer, errors included (they are HTTP 200, as axios expects)."""
    preflight = http.options(
        "/upload",
        headers={"Origin": FRONTEND, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == FRONTEND
    origin = {"Origin": FRONTEND}
    error = http.post(
        "/upload", files={"file": ("a.txt", b"hello world")}, data={"quality": "50"}, headers=origin
    )
    assert (error.status_code, error.json()) == (200, NOT_AN_IMAGE)
    assert error.headers["access-control-allow-origin"] == FRONTEND
    status = http.get(f"/task/{'0' * 32}", headers=origin)
    assert status.headers["access-control-allow-origin"] == FRONTEND
    other = http.get(f"/task/{'0' * 32}", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers
