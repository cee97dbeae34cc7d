"""Uploads the API refuses before queueing them: the right 4xx, a short message, no file left."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PIL import Image
from starlette.testclient import TestClient

from screening import structure
from shared.settings import Settings
from tests import images
from tests.files import leftover_files


def test_non_image_is_415_and_leaves_no_file(client: TestClient, settings: Settings) -> None:
    response = client.post("/v1/jobs", files={"file": ("notes.jpg", b"just some text, not a JPEG\n" * 40)})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media"
    assert leftover_files(settings) == []


def test_segment_flood_is_422_at_upload_and_leaves_no_file(client: TestClient, settings: Settings) -> None:
    # 1.6 MB of empty JPEG segments: Pillow alone would spend 0.4 s and 60 MB reading the header.
    flood = images.jpeg()[:2] + b"\xff\xe5\x00\x02" * 400_000 + images.jpeg()[2:]
    response = client.post("/v1/jobs", content=flood, headers={"content-type": "image/jpeg"})
    assert response.status_code == 422
    assert response.json()["error"] == {"code": "corrupt_image", "message": structure.TOO_MUCH}
    assert leftover_files(settings) == []


def test_svg_named_png_is_415(client: TestClient) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><image href="text:/etc/passwd"/></svg>'
    response = client.post("/v1/jobs", content=svg, headers={"content-type": "image/png"})
    assert response.status_code == 415
    assert "/etc" not in response.text


def test_unsupported_request_content_type_is_415(client: TestClient) -> None:
    response = client.post("/v1/jobs", content=b"{}", headers={"content-type": "application/json"})
    assert response.status_code == 415


def test_too_many_bytes_is_413_even_without_content_length(client: TestClient, settings: Settings) -> None:
    def chunks() -> Iterator[bytes]:
        yield images.jpeg()
        for _ in range(40):
            yield b"\0" * 65536

    response = client.post("/v1/jobs", content=chunks(), headers={"content-type": "image/jpeg"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert leftover_files(settings) == []


def test_declared_length_over_limit_is_413(client: TestClient, settings: Settings) -> None:
    big = b"\xff\xd8" + b"\0" * (settings.max_upload_bytes + 10)
    response = client.post("/v1/jobs", files={"file": ("big.jpg", big)})
    assert response.status_code == 413
    assert leftover_files(settings) == []


def test_too_many_pixels_is_413(client: TestClient, settings: Settings) -> None:
    huge = images.encode(Image.new("L", (2100, 2000)), "PNG")
    response = client.post("/v1/jobs", files={"file": ("huge.png", huge)})
    assert response.status_code == 413
    assert "pixels" in response.json()["error"]["message"]
    assert leftover_files(settings) == []


@pytest.mark.parametrize("fields", [{"quality": "0"}, {"quality": "101"}, {"quality": "high"}])
def test_bad_option_is_400(client: TestClient, fields: dict[str, str], settings: Settings) -> None:
    response = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data=fields)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_option"
    assert "quality" in response.json()["error"]["message"]
    assert leftover_files(settings) == []


def test_missing_file_field_is_400(client: TestClient) -> None:
    response = client.post("/v1/jobs", files={"picture": ("a.jpg", images.jpeg())})
    assert response.status_code == 400
    assert "'file'" in response.json()["error"]["message"]


def test_empty_body_is_400(client: TestClient) -> None:
    response = client.post("/v1/jobs", content=b"", headers={"content-type": "image/png"})
    assert response.status_code == 400
