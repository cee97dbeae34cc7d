"""The HTTP API through TestClient(create_app(settings)) on a real Redis, with real RQ workers."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import unquote

import pytest
import redis
from PIL import Image
from starlette.testclient import TestClient

from api.app import create_app
from api.jobs import prefers_image
from shared import names, storage
from shared.settings import Settings
from tests import images
from tests.files import leftover_files

RunJobs = Callable[[], None]


def upload(client: TestClient, data: bytes, name: str = "photo.jpg", **fields: str) -> dict:
    response = client.post("/v1/jobs", files={"file": (name, data, "application/octet-stream")}, data=fields)
    assert response.status_code == 202, response.text
    return response.json()


def test_multipart_upload_is_queued_with_location(client: TestClient) -> None:
    response = client.post("/v1/jobs", files={"file": ("cat.jpg", images.jpeg(), "image/jpeg")})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["input"] == {
        "filename": "cat.jpg",
        "media_type": "image/jpeg",
        "bytes": len(images.jpeg()),
        "width": 320,
        "height": 240,
    }
    assert job["output"] is None and job["error"] is None
    url = f"/v1/jobs/{job['id']}"
    assert job["links"] == {
        "self": url,
        "result": f"{url}/result",
        "input": f"{url}/input",
        "events": f"{url}/events",
    }
    assert storage.is_job_id(job["id"])


def test_raw_upload_takes_options_and_name_from_query(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs?quality=55&filename=holiday.jpg",
        content=images.jpeg(),
        headers={"content-type": "image/jpeg"},
    )
    assert response.status_code == 202
    assert response.json()["options"]["quality"] == 55
    assert response.json()["input"]["filename"] == "holiday.jpg"


def test_raw_upload_name_from_content_disposition(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs",
        content=images.jpeg(),
        headers={
            "content-type": "application/octet-stream",
            "content-disposition": 'inline; filename="x.jpeg"',
        },
    )
    assert response.json()["input"]["filename"] == "x.jpeg"


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        # RFC 6266's form for names beyond ASCII, as curl users and HTTP libraries write it; a
        # decomposed accent is stored composed.
        ("attachment; filename*=UTF-8''cafe%CC%81%20%22cr%C3%A8me%22.png", 'café "crème".png'),
        # Both: the extended name wins, the plain one is the fallback for old servers.
        ("attachment; filename=\"cafe.png\"; filename*=UTF-8''caf%C3%A9.png", "café.png"),
        # Bytes that are not what their charset says: the plain name.
        ("attachment; filename=\"plain.png\"; filename*=UTF-8''%FF%FE.png", "plain.png"),
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fx.png", "x.png"),
    ],
)
def test_raw_upload_name_from_an_extended_content_disposition(
    client: TestClient, disposition: str, name: str
) -> None:
    headers = {"content-type": "image/png", "content-disposition": disposition}
    response = client.post("/v1/jobs", content=images.encode(images.photo(), "PNG"), headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["input"]["filename"] == name


def test_full_flow_finishes_and_downloads_smaller_image(client: TestClient, run_jobs: RunJobs) -> None:
    job = upload(client, images.jpeg(), quality="60")
    run_jobs()
    finished = client.get(f"/v1/jobs/{job['id']}").json()
    assert finished["status"] == "finished"
    assert finished["output"]["bytes"] < finished["input"]["bytes"]
    assert finished["saved_bytes"] == finished["input"]["bytes"] - finished["output"]["bytes"]
    assert 0 < finished["saved_ratio"] < 1
    assert finished["started_at"] <= finished["finished_at"] < finished["expires_at"]
    result = client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/jpeg"
    assert result.headers["x-content-type-options"] == "nosniff"
    assert result.headers["content-disposition"] == 'attachment; filename="photo.jpg"'
    assert len(result.content) == finished["output"]["bytes"]
    Image.open(io.BytesIO(result.content)).load()
    again = client.get(f"/v1/jobs/{job['id']}/result", headers={"if-none-match": result.headers["etag"]})
    assert again.status_code == 304


def test_traversal_file_name_lands_safely(client: TestClient, settings: Settings, run_jobs: RunJobs) -> None:
    job = upload(client, images.jpeg(), name="../../etc/x.jpg")
    assert job["input"]["filename"] == "x.jpg"
    files = leftover_files(settings)
    assert files == [storage.input_path(settings.data_dir, job["id"])]
    assert not (settings.data_dir.parent / "etc").exists()
    run_jobs()
    result = client.get(f"/v1/jobs/{job['id']}/result")
    assert result.headers["content-disposition"] == 'attachment; filename="x.jpg"'


def test_download_name_gets_the_output_extension_and_unicode_form(
    client: TestClient, run_jobs: RunJobs
) -> None:
    job = upload(client, images.jpeg(), name="Fête d'été.JPEG")
    run_jobs()
    disposition = client.get(f"/v1/jobs/{job['id']}/result").headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Fete d_ete.jpg"')
    assert "filename*=UTF-8''F%C3%AAte%20d%27%C3%A9t%C3%A9.jpg" in disposition


def test_a_browser_form_keeps_quotes_in_the_file_name(client: TestClient) -> None:
    # Browsers send `"` in a form's file name as %22 (the HTML standard's multipart encoding).
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="it\'s a %22quoted%22 name.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + images.jpeg() + b"\r\n--XyZ--\r\n"
    )
    response = client.post(
        "/v1/jobs", content=body, headers={"content-type": "multipart/form-data; boundary=XyZ"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["input"]["filename"] == 'it\'s a "quoted" name.jpg'


def test_long_download_names_fit_a_file_system(client: TestClient, run_jobs: RunJobs) -> None:
    whole = upload(client, images.jpeg(), name="a" * 196 + ".jpg")  # the longest name kept: 200
    accented = upload(client, images.jpeg(), name="é" * 250 + ".jpg")  # kept: 196 of them
    assert accented["input"]["filename"] == "é" * 196 + ".jpg"
    run_jobs()
    for job, expected in ((whole, "a" * 196 + ".jpg"), (accented, "é" * 125 + ".jpg")):
        for link in ("result", "input"):
            disposition = client.get(f"/v1/jobs/{job['id']}/{link}").headers["content-disposition"]
            encoded = disposition.partition("filename*=UTF-8''")[2] or disposition.split('"')[1]
            assert unquote(encoded) == expected and len(expected.encode()) <= 255


def test_corrupt_jpeg_fails_with_corrupt_image(
    client: TestClient, settings: Settings, run_jobs: RunJobs
) -> None:
    truncated = images.jpeg()[:3000]
    job = upload(client, truncated, name="broken.jpg")
    run_jobs()
    failed = client.get(f"/v1/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "corrupt_image"
    assert failed["output"] is None
    result = client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 422
    assert result.json()["error"]["code"] == "corrupt_image"
    assert "Traceback" not in result.text and str(settings.data_dir) not in result.text
    # The input of a failed job is deleted at once; only the record remains.
    assert leftover_files(settings) == []


def test_result_before_finish_is_409(client: TestClient) -> None:
    job = upload(client, images.jpeg())
    response = client.get(f"/v1/jobs/{job['id']}/result")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_finished"


@pytest.mark.parametrize("path", ["/v1/jobs/{id}", "/v1/jobs/{id}/result", "/v1/jobs/{id}/events"])
@pytest.mark.parametrize("job_id", ["0" * 32, "..%2F..%2Fetc", "not-an-id"])
def test_unknown_ids_are_404(client: TestClient, path: str, job_id: str) -> None:
    response = client.get(path.format(id=job_id))
    assert response.status_code == 404


def test_wait_returns_as_soon_as_the_job_ends(client: TestClient, run_jobs: RunJobs) -> None:
    job = upload(client, images.jpeg())
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job['id']}?wait=0.3")
    assert response.json()["status"] == "queued"
    assert time.monotonic() - started >= 0.3
    run_jobs()
    response = client.get(f"/v1/jobs/{job['id']}?wait=30")
    assert response.json()["status"] == "finished"


@pytest.mark.parametrize("wait", ["-1", "31", "soon"])
def test_bad_wait_is_400(client: TestClient, wait: str) -> None:
    job = upload(client, images.jpeg())
    assert client.get(f"/v1/jobs/{job['id']}?wait={wait}").status_code == 400


def test_delete_removes_files_and_record(client: TestClient, settings: Settings, run_jobs: RunJobs) -> None:
    job = upload(client, images.jpeg())
    run_jobs()
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert leftover_files(settings) == []
    gone = client.get(f"/v1/jobs/{job['id']}")
    assert gone.status_code == 410 and gone.json()["error"]["message"] == "This job was deleted."
    assert client.get(f"/v1/jobs/{job['id']}/result").status_code == 410
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 410


def test_delete_of_a_queued_job_means_it_never_runs(
    client: TestClient, settings: Settings, run_jobs: RunJobs
) -> None:
    job = upload(client, images.jpeg())
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    run_jobs()
    assert leftover_files(settings) == []
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 410


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_input_serves_the_original_while_the_job_keeps_it(client: TestClient, run_jobs: RunJobs) -> None:
    original = images.png_with_alpha()
    job = upload(client, original, "logo.png")
    run_jobs()
    response = client.get(f"/v1/jobs/{job['id']}/input")
    assert response.status_code == 200
    assert response.content == original
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    failed = upload(client, images.jpeg()[:2500], "cut.jpg")
    run_jobs()
    assert client.get(f"/v1/jobs/{failed['id']}/input").status_code == 410


@pytest.mark.parametrize(
    ("accept", "image"),
    [
        ("image/*", True),
        ("image/webp, image/*;q=0.8, application/json;q=0.5", True),
        ("image/*;q=0.4, application/json", False),
        ("*/*", False),
        ("application/json, image/*", False),
        ("image/*;q=0", False),
        ("image/*;q=bad", False),
        ("", False),
    ],
)
def test_image_answer_only_when_the_client_ranks_images_first(accept: str, image: bool) -> None:
    assert prefers_image(accept) is image


def test_delete_leaves_no_copy_of_the_job_in_rq(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs
) -> None:
    # RQ's copy holds the file name, the options and the callback URL: it must go too.
    finished = upload(client, images.jpeg(), name="private-name.jpg")
    run_jobs()
    queued = upload(client, images.jpeg(), name="private-name.jpg")
    for job in (finished, queued):
        assert connection.exists(f"rq:job:{job['id']}")
        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
        assert not connection.exists(f"rq:job:{job['id']}")
    leftovers = [key for key in connection.keys("rq:*") if b"private-name" in connection.dump(key)]
    assert leftovers == []


def test_data_files_and_folders_are_private(settings: Settings, run_jobs: RunJobs) -> None:
    previous = os.umask(0o022)  # the usual umask: what the service creates must not rely on it
    try:
        with TestClient(create_app(settings)) as client:
            job = upload(client, images.jpeg())
            run_jobs()
    finally:
        os.umask(previous)
    folders = [settings.data_dir, *[p for p in settings.data_dir.rglob("*") if p.is_dir()]]
    files = leftover_files(settings)
    assert storage.output_path(settings.data_dir, job["id"]) in files
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o700"}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}


def test_a_job_deleted_while_a_worker_holds_it_leaves_no_copy_in_rq(
    client: TestClient, connection: redis.Redis, run_jobs: RunJobs
) -> None:
    job = upload(client, images.jpeg(), name="private-name.jpg")
    # DELETE just after a worker took the job from the queue: only the record is gone.
    connection.delete(names.job_key(job["id"]))
    run_jobs()
    assert not connection.exists(f"rq:job:{job['id']}")


def test_limits_are_public_and_match_the_settings(settings: Settings) -> None:
    with TestClient(create_app(replace(settings, api_keys=("k1",), max_batch_files=7))) as client:
        response = client.get("/v1/limits")
        assert response.status_code == 200
        limits = response.json()
        assert limits["max_upload_bytes"] == settings.max_upload_bytes
        assert limits["max_pixels"] == settings.max_pixels
        assert limits["max_batch_files"] == 7
        assert limits["retention_seconds"] == settings.retention_seconds
        assert "image/avif" in limits["media_types"] and "auto" in limits["formats"]
        assert client.get("/v1/jobs/" + "0" * 32).status_code == 401  # the rest still needs a key


def test_a_variant_recompresses_the_stored_upload(
    client: TestClient, run_jobs: Callable[[], None], settings: Settings
) -> None:
    first = client.post(
        "/v1/jobs", files={"file": ("photo.jpg", images.jpeg())}, data={"quality": "90"}
    ).json()
    run_jobs()
    response = client.post(f"/v1/jobs/{first['id']}/variants", data={"quality": "20", "format": "webp"})
    assert response.status_code == 202, response.text
    variant = response.json()
    assert response.headers["location"] == f"/v1/jobs/{variant['id']}"
    assert variant["id"] != first["id"] and variant["input"] == first["input"]
    assert (variant["options"]["quality"], variant["options"]["format"]) == (20, "webp")
    run_jobs()
    done = client.get(f"/v1/jobs/{variant['id']}").json()
    assert done["status"] == "finished" and done["output"]["format"] == "webp"
    assert client.get(f"/v1/jobs/{variant['id']}/input").content == images.jpeg()
    # Either may go first: each job holds its own link to the upload.
    assert client.delete(f"/v1/jobs/{first['id']}").status_code == 204
    again = client.post(f"/v1/jobs/{variant['id']}/variants?quality=auto")
    assert again.status_code == 202 and again.json()["options"]["quality"] == "auto"
    assert client.post(f"/v1/jobs/{first['id']}/variants").status_code == 410
    assert client.post(f"/v1/jobs/{variant['id']}/variants", data={"quality": "0"}).status_code == 400
    assert client.post(f"/v1/jobs/{'0' * 32}/variants").status_code == 404


def test_a_variant_belongs_to_the_sources_key(settings: Settings) -> None:
    with TestClient(create_app(replace(settings, api_keys=("k1", "k2")))) as client:
        mine, theirs = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
        job = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, headers=mine).json()
        assert client.post(f"/v1/jobs/{job['id']}/variants", headers=theirs).status_code == 404
        variant = client.post(f"/v1/jobs/{job['id']}/variants", headers=mine).json()
        assert client.get(f"/v1/jobs/{variant['id']}", headers=mine).status_code == 200
        assert client.get(f"/v1/jobs/{variant['id']}", headers=theirs).status_code == 404


def test_static_files_are_cached_and_the_favicon_exists(client: TestClient) -> None:
    for path in ("/static/app.js", "/static/app.css", "/"):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"
    etag = client.get("/static/app.js").headers["etag"]
    assert client.get("/static/app.js", headers={"If-None-Match": etag}).status_code == 304
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
