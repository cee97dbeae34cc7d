"""Batches through TestClient on a real Redis, with a real in-process RQ worker."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import redis
from PIL import Image
from starlette.testclient import TestClient

from api.app import create_app
from shared import names
from shared.settings import Settings
from tests import images

RunJobs = Callable[[], None]
NOT_AN_IMAGE = b"%PDF-1.4\nnot an image at all\n"


def post_batch(client: TestClient, files: list[tuple[str, bytes]], **fields: str) -> dict:
    response = client.post("/v1/batches", files=[("file", item) for item in files], data=fields)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/batches/{response.json()['id']}"
    return response.json()


def leftover_files(settings: Settings) -> list[Path]:
    return [p for p in settings.data_dir.rglob("*") if p.is_file()]


def test_batch_counts_jobs_and_bytes_and_rejects_a_non_image(client: TestClient, run_jobs: RunJobs) -> None:
    jpeg, png = images.jpeg(), images.png_with_alpha()
    batch = post_batch(client, [("a.jpg", jpeg), ("notes.pdf", NOT_AN_IMAGE), ("b.png", png)], quality=60)
    assert batch["status"] == "running" and batch["total"] == 2
    assert batch["counts"] == {"queued": 2, "started": 0, "finished": 0, "failed": 0, "deleted": 0}
    assert [job["input"]["filename"] for job in batch["jobs"]] == ["a.jpg", "b.png"]
    assert all(job["options"]["quality"] == 60 and job["batch_id"] == batch["id"] for job in batch["jobs"])
    assert [(r["filename"], r["error"]["code"]) for r in batch["rejected"]] == [
        ("notes.pdf", "unsupported_media")
    ]
    assert batch["input_bytes"] == len(jpeg) + len(png) and batch["output_bytes"] == 0
    run_jobs()
    done = client.get(f"/v1/batches/{batch['id']}").json()
    assert done["status"] == "finished"
    assert done["counts"]["finished"] == 2
    outputs = [job["output"]["bytes"] for job in done["jobs"]]
    assert done["output_bytes"] == sum(outputs)
    assert done["saved_bytes"] == len(jpeg) + len(png) - sum(outputs) > 0


def test_archive_holds_every_output_under_unique_safe_names(client: TestClient, run_jobs: RunJobs) -> None:
    files = [
        ("photo.jpg", images.jpeg()),
        ("../../photo.jpg", images.jpeg(80)),
        ("logo.png", images.png_with_alpha()),
    ]
    batch = post_batch(client, files)
    assert client.get(f"/v1/batches/{batch['id']}/archive").status_code == 409
    run_jobs()
    response = client.get(f"/v1/batches/{batch['id']}/archive")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == f'attachment; filename="imgpress-{batch["id"][:8]}.zip"'
    assert int(response.headers["content-length"]) == len(response.content)
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["photo.jpg", "photo (2).jpg", "logo.png"]
        for job, name in zip(batch["jobs"], archive.namelist(), strict=True):
            assert archive.read(name) == client.get(f"/v1/jobs/{job['id']}/result").content


def test_files_past_the_batch_limit_are_refused_one_by_one(settings: Settings) -> None:
    with TestClient(create_app(replace(settings, max_batch_files=2))) as client:
        files = [("file", (f"{n}.jpg", images.jpeg())) for n in range(3)]
        batch = client.post("/v1/batches", files=files).json()
        assert [(job["index"], job["input"]["filename"]) for job in batch["jobs"]] == [
            (0, "0.jpg"),
            (1, "1.jpg"),
        ]
        ((refused,),) = [batch["rejected"]]
        assert (refused["index"], refused["filename"], refused["error"]["code"]) == (2, "2.jpg", "too_large")
        assert "at most 2 files" in refused["error"]["message"]
        assert len(leftover_files(settings)) == 2  # the two inputs, nothing of the third


def test_an_empty_or_oversized_file_refuses_only_itself(settings: Settings, run_jobs: RunJobs) -> None:
    small = images.jpeg()
    with TestClient(create_app(replace(settings, max_upload_bytes=len(small) + 10))) as client:
        files = [
            ("file", ("a.jpg", small)),
            ("file", ("empty.png", b"")),
            ("file", ("big.jpg", small + b"\0" * 5000)),
            ("file", ("b.jpg", small)),
        ]
        batch = client.post("/v1/batches", files=files).json()
        assert [(job["index"], job["input"]["filename"]) for job in batch["jobs"]] == [
            (0, "a.jpg"),
            (3, "b.jpg"),
        ]
        assert [(r["index"], r["filename"], r["error"]["code"]) for r in batch["rejected"]] == [
            (1, "empty.png", "bad_option"),
            (2, "big.jpg", "too_large"),
        ]
        assert "empty" in batch["rejected"][0]["error"]["message"]
        run_jobs()
        assert client.get(f"/v1/batches/{batch['id']}").json()["counts"]["finished"] == 2
    # Input and output of the two jobs; the refused files left nothing.
    assert len(leftover_files(settings)) == 4


def test_names_the_server_changes_keep_their_position(client: TestClient) -> None:
    names = ["cafe\u0301.png", 'say "cheese".jpg', "back\\slash.jpg", "x" * 230 + ".jpg"]
    batch = post_batch(client, [(name, images.jpeg()) for name in names])
    assert [job["index"] for job in batch["jobs"]] == [0, 1, 2, 3]
    shown = [job["input"]["filename"] for job in batch["jobs"]]
    assert shown[0] == "caf\u00e9.png" and shown[2] == "slash.jpg" and len(shown[3]) == 200
    again = client.get(f"/v1/batches/{batch['id']}").json()
    assert [job["index"] for job in again["jobs"]] == [0, 1, 2, 3]


def test_a_batch_of_only_refused_files_is_refused(client: TestClient, settings: Settings) -> None:
    response = client.post("/v1/batches", files=[("file", ("a.pdf", NOT_AN_IMAGE)), ("file", ("b.png", b""))])
    assert response.status_code == 400
    # Each file's own reason, by position, beside the one that sets the status.
    refusals = response.json()["error"]["rejected"]
    assert [(r["index"], r["error"]["code"]) for r in refusals] == [
        (0, "unsupported_media"),
        (1, "bad_option"),
    ]
    response = client.post(
        "/v1/batches", files=[("file", ("a.pdf", NOT_AN_IMAGE)), ("file", ("b.pdf", NOT_AN_IMAGE))]
    )
    assert response.status_code == 415
    assert leftover_files(settings) == []
    assert (
        client.post("/v1/batches", content=images.jpeg(), headers={"content-type": "image/jpeg"}).status_code
        == 415
    )
    assert client.post("/v1/batches", files={"quality": (None, "50")}).status_code == 400


def test_delete_removes_the_batch_its_jobs_and_files(
    client: TestClient, run_jobs: RunJobs, settings: Settings
) -> None:
    batch = post_batch(client, [("a.jpg", images.jpeg()), ("b.jpg", images.jpeg())])
    run_jobs()
    assert leftover_files(settings) != []
    assert client.delete(f"/v1/batches/{batch['id']}").status_code == 204
    gone = client.get(f"/v1/batches/{batch['id']}")
    assert gone.status_code == 410 and gone.json()["error"]["message"] == "This batch was deleted."
    assert all(client.get(f"/v1/jobs/{job['id']}").status_code == 410 for job in batch["jobs"])
    assert leftover_files(settings) == []
    assert client.delete(f"/v1/batches/{batch['id']}").status_code == 410
    assert client.get(f"/v1/batches/{'0' * 32}").status_code == 404


def test_a_batch_belongs_to_its_key(settings: Settings) -> None:
    with TestClient(create_app(replace(settings, api_keys=("k1", "k2")))) as client:
        mine = {"Authorization": "Bearer k1"}
        response = client.post("/v1/batches", files=[("file", ("a.jpg", images.jpeg()))], headers=mine)
        assert response.status_code == 202
        url = f"/v1/batches/{response.json()['id']}"
        assert client.get(url, headers=mine).status_code == 200
        assert client.get(url, headers={"Authorization": "Bearer k2"}).status_code == 404
        assert client.get(url).status_code == 401


def test_the_batch_record_expires_with_its_jobs(
    client: TestClient, run_jobs: RunJobs, settings: Settings, connection: redis.Redis
) -> None:
    batch = post_batch(client, [("a.jpg", images.jpeg())])
    key = names.batch_key(batch["id"])
    assert connection.ttl(key) > settings.retention_seconds
    run_jobs()
    assert 0 < connection.ttl(key) <= settings.retention_seconds + 1


def test_an_archive_of_named_jobs_holds_their_finished_outputs_in_order(
    client: TestClient, run_jobs: RunJobs
) -> None:
    noise = images.encode(Image.effect_noise((160, 120), 60).convert("RGB"), "PNG")
    first = post_batch(client, [("cafe\u0301.jpg", images.jpeg()), ("noise.png", noise)], max_bytes="100")
    logo = images.png_with_alpha()
    second = post_batch(client, [('say "cheese".jpg', images.jpeg(80)), ("logo.png", logo)])
    again = post_batch(client, [("noise.png", noise)])
    jobs = [*first["jobs"], *second["jobs"], *again["jobs"]]
    wanted = [jobs[3]["id"], jobs[1]["id"], jobs[4]["id"], jobs[2]["id"]]
    query = "&".join(f"job={job_id}" for job_id in wanted)
    assert client.get(f"/v1/archive?{query}").status_code == 409
    run_jobs()
    # The failed job is left out, and so are an unknown id, a malformed one and a repeat.
    response = client.get(f"/v1/archive?{query}&job={'0' * 32}&job=../x&job={wanted[0]}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == f'attachment; filename="imgpress-{wanted[0][:8]}.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["logo.png", "noise.png", 'say "cheese".jpg']
        for job_id, name in zip([wanted[0], wanted[2], wanted[3]], archive.namelist(), strict=True):
            assert archive.read(name) == client.get(f"/v1/jobs/{job_id}/result").content
    failed = client.get(f"/v1/archive?job={first['jobs'][1]['id']}")
    assert failed.status_code == 409
    assert failed.json()["error"]["message"] == "None of these jobs has a finished image to download."


def test_an_archive_names_between_one_job_and_a_batch_s_worth(settings: Settings) -> None:
    with TestClient(create_app(replace(settings, max_batch_files=2))) as client:
        response = client.get("/v1/archive")
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "Name the jobs to archive: ?job={id}&job={id}."
        ids = "&".join(f"job={n:032x}" for n in range(3))
        response = client.get(f"/v1/archive?{ids}")
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert message == "At most 2 jobs per archive; ask for the others in another."


def test_an_archive_leaves_out_another_key_s_jobs(settings: Settings, run_jobs: RunJobs) -> None:
    with TestClient(create_app(replace(settings, api_keys=("alice-key", "bob-key")))) as client:
        alice = {"Authorization": "Bearer alice-key"}
        bob = {"Authorization": "Bearer bob-key"}
        mine = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, headers=alice).json()
        theirs = client.post("/v1/jobs", files={"file": ("b.jpg", images.jpeg())}, headers=bob).json()
        run_jobs()
        both = f"/v1/archive?job={theirs['id']}&job={mine['id']}"
        with zipfile.ZipFile(io.BytesIO(client.get(both, headers=alice).content)) as archive:
            assert archive.namelist() == ["a.jpg"]
        # Another key's job alone reads as none at all, as an unknown id does.
        for alone in (theirs["id"], "0" * 32):
            response = client.get(f"/v1/archive?job={alone}", headers=alice)
            assert response.status_code == 404, response.text
        assert client.get(both).status_code == 401
