"""API keys, job ownership, the upload rate limit and CORS, through the real app and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from shared.settings import Settings
from tests import images

ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


@pytest.fixture
def keyed(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(replace(settings, api_keys=("alice-key", "bob-key")))) as client:
        yield client


def post(client: TestClient, headers: dict[str, str] | None = None, path: str = "/v1/jobs") -> object:
    return client.post(path, files={"file": ("a.jpg", images.jpeg())}, headers=headers or {})


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "alice-key"}, {"Authorization": "Basic x"}],
)
def test_keys_required_on_v1(keyed: TestClient, headers: dict[str, str]) -> None:
    response = keyed.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"
    assert keyed.get(f"/v1/jobs/{'0' * 32}", headers=headers).status_code == 401


def test_seed_routes_need_a_key_too_and_answer_in_their_envelope(keyed: TestClient) -> None:
    form = {"quality": "50"}
    response = keyed.post("/upload", files={"file": ("a.jpg", images.jpeg())}, data=form)
    assert response.status_code == 401
    assert response.json() == {
        "error": "An error occurred",
        "message": "A valid API key is required: send 'Authorization: Bearer <key>'.",
        "code": 401,
    }
    accepted = keyed.post("/upload", files={"file": ("a.jpg", images.jpeg())}, data=form, headers=ALICE)
    assert accepted.json()["code"] == 200


def test_health_stays_open(keyed: TestClient) -> None:
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/readyz").status_code in (200, 503)  # no worker here; never 401


def test_a_job_is_visible_only_to_its_key(keyed: TestClient) -> None:
    created = keyed.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, headers=ALICE)
    assert created.status_code == 202
    job = created.json()
    assert "owner" not in job
    assert keyed.get(f"/v1/jobs/{job['id']}", headers=ALICE).status_code == 200
    assert keyed.get(f"/v1/jobs/{job['id']}", headers=BOB).status_code == 404
    assert keyed.get(f"/v1/jobs/{job['id']}/result", headers=BOB).status_code == 404
    assert keyed.delete(f"/v1/jobs/{job['id']}", headers=BOB).status_code == 404
    # As for any id it does not know, the original app's route says PENDING and nothing more.
    assert keyed.get(f"/task/{job['id']}", headers=BOB).json()["data"] == {
        "id": job["id"],
        "status": "PENDING",
        "result": None,
    }
    assert keyed.delete(f"/v1/jobs/{job['id']}", headers=ALICE).status_code == 204


def test_rate_limit_is_per_key_with_retry_after(settings: Settings) -> None:
    limited = replace(settings, api_keys=("alice-key", "bob-key"), rate_limit=(2, 3600))
    with TestClient(create_app(limited)) as client:
        for _ in range(2):
            assert (
                client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, headers=ALICE).status_code
                == 202
            )
        refused = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, headers=ALICE)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 0 < int(refused.headers["retry-after"]) <= 3600
        assert (
            client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, headers=BOB).status_code == 202
        )


def test_rate_limit_holds_across_api_processes(settings: Settings) -> None:
    limited = replace(settings, rate_limit=(3, 3600))
    with TestClient(create_app(limited)) as first, TestClient(create_app(limited)) as second:
        codes = [client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}).status_code
                 for client in (first, second, first, second)]  # fmt: skip
    assert codes == [202, 202, 202, 429]


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_configured_origins(settings: Settings) -> None:
    with TestClient(
        create_app(replace(settings, cors_origins=("https://app.example",), api_keys=("k",)))
    ) as c:
        preflight = c.options(
            "/v1/jobs",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
