"""The Python client: error mapping, retry policy, streamed uploads; no server or an absent one."""

from __future__ import annotations

import inspect
import io
from pathlib import Path

import httpx
import pytest
from shared.client import Client, Retry, RetryPolicy
from shared.client_errors import ServerError, ServerUnreachable, Unauthorized, UnexpectedResponse
from shared.upload_body import CHUNK_BYTES, UploadBody

from shared import client_errors, errors
from tests.ports import free_port

FAST_RETRY = RetryPolicy(retries=2, backoff=0.05, max_delay=0.2)


def subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def test_every_server_error_code_is_mapped_to_its_class() -> None:
    server_errors = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ImgpressError) and cls is not errors.ImgpressError
    ]
    assert server_errors
    for cls in server_errors:
        # A subclass that only words its parent's error differently (BatchExpired) shares its code.
        mapped = client_errors.CODES.get(cls.code)
        assert mapped is not None and issubclass(cls, mapped), f"{cls.__name__} ({cls.code}) is not in CODES"


def test_every_httpx_transport_error_is_translated() -> None:
    for cls in subclasses(httpx.TransportError):
        assert any(base in client_errors.TRANSPORT for base in cls.__mro__), f"{cls.__name__} is unmapped"
    assert isinstance(client_errors.from_transport(httpx.ReadTimeout("slow")), client_errors.RequestTimedOut)


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, text="<html>oops</html>", headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def error_body(code: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": f"about {code}"}}


def test_error_answers_become_the_right_exceptions() -> None:
    too_large = client_errors.from_response(answer(413, error_body("too_large")))
    assert isinstance(too_large, errors.TooLarge) and too_large.message == "about too_large"
    limited = client_errors.from_response(answer(429, error_body("rate_limited"), **{"Retry-After": "7"}))
    assert isinstance(limited, errors.RateLimited) and limited.retry_after == 7
    assert isinstance(client_errors.from_response(answer(401, error_body("unauthorized"))), Unauthorized)
    assert isinstance(client_errors.from_response(answer(500)), ServerError)
    unknown = client_errors.from_response(answer(418, error_body("teapot")))
    assert isinstance(unknown, UnexpectedResponse) and unknown.status == 418
    failed = client_errors.error_for("corrupt_image", "cut short")
    assert isinstance(failed, errors.CorruptImage)


def test_retry_policy_honours_retry_after_within_its_cap() -> None:
    policy = RetryPolicy(retries=3, backoff=1, max_delay=10)
    assert policy.delay(0, answer(503, error_body("service_unavailable"), **{"Retry-After": "4"})) == 4
    assert policy.delay(0, answer(429, error_body("rate_limited"), **{"Retry-After": "60"})) == 10
    assert 0.5 <= policy.delay(1, None) <= 2


def test_uploads_are_streamed_in_chunks_and_rewound_for_a_retry(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (CHUNK_BYTES * 3 + 5))
    body = UploadBody(path)
    assert body.headers() == {"content-length": str(CHUNK_BYTES * 3 + 5)}
    assert [len(chunk) for chunk in body.chunks()] == [CHUNK_BYTES] * 3 + [5]
    stream = io.BytesIO(b"abc" * 10)
    stream.read(3)
    rewound = UploadBody(stream)
    assert b"".join(rewound.chunks()) == b"abc" * 9
    assert b"".join(rewound.chunks()) == b"abc" * 9 and rewound.repeatable


def test_no_server_is_server_unreachable_after_bounded_retries() -> None:
    seen: list[Retry] = []
    with Client(f"http://127.0.0.1:{free_port()}", retry=FAST_RETRY, on_retry=seen.append) as imgpress:
        with pytest.raises(ServerUnreachable):
            imgpress.status("0" * 32)
    assert [retry.attempt for retry in seen] == [1, 2]
