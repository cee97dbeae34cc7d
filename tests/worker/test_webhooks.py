"""Webhooks: signed POSTs to a local receiver, delivered by an in-process RQ worker; SSRF refusals."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from shared import callbacks
from shared.errors import BadOption
from shared.settings import Settings
from tests import images

RunJobs = Callable[[], None]
SECRET = "s3cret-for-tests"


class Receiver(HTTPServer):
    """A tiny HTTP server on 127.0.0.1 that records every POST it gets."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert isinstance(self.server, Receiver)
        self.server.received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def hook_settings(settings: Settings, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Webhooks on, private receivers allowed, for the API here and the worker (from the environment).

    Made after run_jobs, which writes the plain settings into the environment first.
    """
    monkeypatch.setenv("IMGPRESS_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("IMGPRESS_WEBHOOK_ALLOW_PRIVATE", "true")
    return replace(settings, webhook_secret=SECRET, webhook_allow_private=True)


def verify(headers: dict[str, str], body: bytes, secret: str = SECRET) -> dict:
    """What a receiver does: check the signature over delivery id, timestamp and body, and the age."""
    delivery, timestamp = headers["X-Imgpress-Delivery"], headers["X-Imgpress-Timestamp"]
    signed = f"{delivery}.{timestamp}.".encode() + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Imgpress-Signature"], expected)
    assert abs(time.time() - int(timestamp)) < 600
    assert str(uuid.UUID(delivery)) == delivery
    assert headers["Content-Type"] == "application/json"
    return dict(json.loads(body))


def test_job_webhook_is_signed_and_sent_once(
    hook_settings: Settings, run_jobs: RunJobs, receiver: Receiver
) -> None:
    with TestClient(create_app(hook_settings)) as client:
        fields = {"callback_url": receiver.url}
        job = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data=fields).json()
        assert job["callback_url"] == receiver.url
        run_jobs()
        run_jobs()
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert headers["X-Imgpress-Event"] == "job"
    payload = verify(headers, body)
    assert payload["event"] == "job.ended"
    assert payload["job"]["id"] == job["id"] and payload["job"]["status"] == "finished"
    assert "owner" not in payload["job"]


def test_batch_webhook_comes_after_all_its_jobs(
    hook_settings: Settings, run_jobs: RunJobs, receiver: Receiver
) -> None:
    with TestClient(create_app(hook_settings)) as client:
        files = [("file", ("a.jpg", images.jpeg())), ("file", ("cut.jpg", images.jpeg()[:2500]))]
        batch = client.post("/v1/batches", files=files, data={"callback_url": receiver.url}).json()
        run_jobs()
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    payload = verify(headers, body)
    assert headers["X-Imgpress-Event"] == "batch" and payload["event"] == "batch.ended"
    assert payload["batch"]["id"] == batch["id"]
    assert payload["batch"]["counts"] == {"queued": 0, "started": 0, "finished": 1, "failed": 1, "deleted": 0}


def test_each_key_can_have_its_own_secret(
    hook_settings: Settings, run_jobs: RunJobs, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    own, plain = "alice-key-0123456789", "bob-key-0123456789"
    own_secret = "alice-secret-0123456789"
    monkeypatch.setenv("IMGPRESS_API_KEYS", f"{own},{plain}")
    monkeypatch.setenv("IMGPRESS_WEBHOOK_KEY_SECRETS", f"{own}={own_secret}")
    keyed = replace(hook_settings, api_keys=(own, plain), webhook_key_secrets=((own, own_secret),))
    with TestClient(create_app(keyed)) as client:
        for key in (own, plain):
            client.post(
                "/v1/jobs",
                files={"file": ("a.jpg", images.jpeg())},
                data={"callback_url": receiver.url},
                headers={"Authorization": f"Bearer {key}"},
            )
            run_jobs()
    (first, first_body), (second, second_body) = receiver.received
    verify(first, first_body, own_secret)
    verify(second, second_body, SECRET)
    with pytest.raises(AssertionError):
        verify(first, first_body, SECRET)
    assert first["X-Imgpress-Delivery"] != second["X-Imgpress-Delivery"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "not a url",
    ],
)
def test_callback_urls_into_private_networks_are_refused(settings: Settings, url: str) -> None:
    with TestClient(create_app(replace(settings, webhook_secret=SECRET))) as client:
        response = client.post(
            "/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data={"callback_url": url}
        )
        assert response.status_code == 400, url
        assert response.json()["error"]["code"] == "bad_option"
        batch = client.post(
            "/v1/batches", files=[("file", ("a.jpg", images.jpeg()))], data={"callback_url": url}
        )
        assert batch.status_code == 400
    assert [p for p in settings.data_dir.rglob("*") if p.is_file()] == []


def test_callback_url_needs_the_secret(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data={"callback_url": "https://example.com/h"}
    )
    assert response.status_code == 400
    assert "Webhooks are off" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::c0a8:1",  # NAT64 of 192.168.0.1
        "64:ff9b:1::808:808",  # local-use NAT64, whatever it carries
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::8.8.8.8",
        "::ffff:0:127.0.0.1",  # IPv4-translated
        "::ffff:0:8.8.8.8",
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "fec0::1",  # site-local (deprecated)
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "fe80::1%eth0",
        "::",
        "::1",
        "ff02::1",
        "240.0.0.1",
        "100.64.0.1",
    ],
)
def test_addresses_that_reach_private_networks_are_not_public(address: str) -> None:
    assert not callbacks.is_public_address(address)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"]
)
def test_public_addresses_and_their_translations_are_public(address: str) -> None:
    assert callbacks.is_public_address(address)


@pytest.mark.parametrize("host", ["[64:ff9b::7f00:1]", "[::127.0.0.1]", "[2002:7f00:1::1]", "[fec0::1]"])
def test_callback_url_check_refuses_ipv6_forms_of_private_addresses(settings: Settings, host: str) -> None:
    # A literal address resolves to itself: nothing is looked up or sent.
    with pytest.raises(BadOption):
        callbacks.check_url(f"http://{host}/hook", replace(settings, webhook_secret=SECRET))
