"""Names a route does not read: refused by name on uploads (400, nothing kept), ignored on reads."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api import params
from shared.options import FIELDS
from shared.settings import Settings
from tests import images
from tests.files import leftover_files

RAW = {"content-type": "image/jpeg"}


def refusal(response: Any) -> str:
    """The message of a 400 bad_option answer."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_option"
    message: str = error["message"]
    return message


def test_a_misspelt_query_option_on_a_raw_upload_is_named_with_the_right_one(
    client: TestClient, settings: Settings
) -> None:
    response = client.post("/v1/jobs?max_byte=5000", content=images.jpeg(), headers=RAW)
    assert refusal(response) == "Unknown option 'max_byte'; did you mean 'max_bytes'?"
    assert leftover_files(settings) == []


@pytest.mark.parametrize(
    ("name", "hint"),
    [("qualty", "did you mean 'quality'?"), ("Format", "did you mean 'format'?"), ("widht", "'width'")],
)
def test_a_misspelt_form_field_is_refused_and_its_upload_deleted(
    client: TestClient, settings: Settings, name: str, hint: str
) -> None:
    response = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data={name: "50"})
    message = refusal(response)
    assert message.startswith(f"Unknown option '{name}'") and hint in message
    assert leftover_files(settings) == []


def test_a_name_nothing_resembles_lists_what_the_route_takes(client: TestClient) -> None:
    response = client.post("/v1/jobs?colour=red", content=images.jpeg(), headers=RAW)
    message = refusal(response)
    assert message.startswith("Unknown option 'colour'; this route takes ")
    for name in [*FIELDS, "wait", "filename", "callback_url"]:
        assert name in message


def test_batches_refuse_unknown_names_in_the_query_and_the_form(
    client: TestClient, settings: Settings
) -> None:
    files = [("file", ("a.jpg", images.jpeg())), ("file", ("b.jpg", images.jpeg()))]
    in_form = client.post("/v1/batches", files=files, data={"max_byte": "5000"})
    assert "did you mean 'max_bytes'?" in refusal(in_form)
    in_query = client.post("/v1/batches?wait=10", files=files)
    assert refusal(in_query).startswith("Unknown option 'wait'")
    assert leftover_files(settings) == []


def test_a_name_in_the_wrong_place_says_where_it_goes(client: TestClient) -> None:
    response = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data={"wait": "5"})
    assert refusal(response) == "'wait' goes in the query string here, not in the form."


def test_every_option_and_the_routes_own_names_are_accepted(client: TestClient) -> None:
    query = {"quality": "70", "format": "webp", "target": "high", "max_bytes": "100000", "width": "64"}
    form = {"height": "48", "fit": "cover", "metadata": "keep", "effort": "fast"}
    assert set(query) | set(form) == set(FIELDS)
    raw = client.post(
        "/v1/jobs", params={**query, "filename": "x.jpg", "wait": "0"}, content=images.jpeg(), headers=RAW
    )
    assert raw.status_code == 202, raw.text
    assert raw.json()["input"]["filename"] == "x.jpg"
    multipart = client.post("/v1/jobs", params=query, files={"file": ("a.jpg", images.jpeg())}, data=form)
    assert multipart.status_code == 202, multipart.text
    assert multipart.json()["options"]["effort"] == "fast"


def test_reads_ignore_names_they_do_not_know(client: TestClient) -> None:
    job = client.post("/v1/jobs", content=images.jpeg(), headers=RAW).json()
    assert client.get(f"/v1/jobs/{job['id']}?t=1700000000&utm_source=mail").status_code == 200
    assert client.get(f"/v1/jobs/{job['id']}?wait=0&wiat=3").json()["id"] == job["id"]
    assert client.get("/healthz?probe=1").status_code == 200


def test_reading_a_name_a_route_does_not_declare_is_a_bug() -> None:
    fields = params.read(params.JOB_READ, {"wait": "1", "other": "x"})
    assert dict(fields) == {"wait": "1"}
    with pytest.raises(params.UndeclaredParameter, match="callback_url"):
        fields.get("callback_url")


def test_only_api_params_reads_query_strings() -> None:
    """Every query parameter goes through api.params, so none is read without being declared."""
    api = Path(__file__).resolve().parents[2] / "api"
    readers = {
        path.name
        for path in api.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in ("query_params", "form")
    }
    assert readers == {"params.py"}
