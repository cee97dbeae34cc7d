"""The Python client without a server: its contract equals the server's, option checks, error
mapping, retry policy, streamed uploads, and an absent server."""

from __future__ import annotations

import inspect
import io
from pathlib import Path
from typing import get_args

import httpx
import pytest

from imgpress import Client, Retry, RetryPolicy, models
from imgpress import errors as client_errors
from imgpress.errors import ServerError, ServerUnreachable, Unauthorized, UnexpectedResponse
from imgpress.upload import CHUNK_BYTES, UploadBody
from shared import errors, options, schema
from tests.ports import free_port

FAST_RETRY = RetryPolicy(retries=2, backoff=0.05, max_delay=0.2)


def subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def test_the_clients_options_are_the_servers() -> None:
    assert models.OPTION_NAMES == tuple(options.FIELDS)
    for name, field in options.FIELDS.items():
        schema_ = field.schema
        if "enum" in schema_:
            assert models.CHOICES[name] == tuple(schema_["enum"]), name
        elif name == "quality":
            number, word = schema_["oneOf"]
            assert models.RANGES[name] == (number["minimum"], number["maximum"])
            assert get_args(models.Options.__annotations__[name]) or word["enum"] == ["auto"]
        else:
            assert schema_["type"] == "integer", name
            assert models.RANGES[name][0] == schema_["minimum"], name
            assert models.RANGES[name][1] == schema_.get("maximum", models.RANGES[name][1]), name
    assert set(get_args(models.JobStatus)) == {status.value for status in schema.JobStatus}
    assert models.TERMINAL == {status.value for status in schema.JobStatus if status.is_terminal}


def test_every_server_error_code_is_a_client_class_of_the_same_name() -> None:
    server_errors = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ImgpressError) and cls is not errors.ImgpressError
    ]
    assert server_errors
    for cls in server_errors:
        mapped = client_errors.CODES.get(cls.code)
        assert mapped is not None, f"{cls.__name__} ({cls.code}) is not in the client's CODES"
        # A subclass that only words its parent's error differently (BatchExpired) shares its code.
        assert mapped.__name__ in {base.__name__ for base in cls.__mro__}, cls.__name__


def test_every_job_error_code_is_a_client_class() -> None:
    # A failed job's code is an exception's from shared.errors (above) or one of the worker's own.
    assert {"timeout", "worker_lost", "internal_error"} <= set(schema.JobFailure)
    for code in schema.JobFailure:
        failed = client_errors.error_for(code, f"about {code}")
        assert not isinstance(failed, UnexpectedResponse), f"job error {code} is not in the client's CODES"
        assert (failed.code, failed.message) == (code, f"about {code}")
    assert isinstance(client_errors.error_for("worker_lost"), client_errors.WorkerLost)
    assert isinstance(client_errors.error_for("timeout"), client_errors.JobTimedOut)


def test_no_client_error_of_its_own_reuses_a_servers_code() -> None:
    own = subclasses(client_errors.ImgpressError) - set(client_errors.CODES.values())
    # JobFailed takes the failed job's code; UnknownOption is a BadOption named more closely.
    own -= {client_errors.UnknownOption}
    for cls in own:
        assert cls.code not in client_errors.CODES, f"{cls.__name__} uses the server's code {cls.code}"


def test_options_are_checked_before_anything_is_sent() -> None:
    assert models.check_options({"quality": 60, "format": "webp", "width": None}) == {
        "quality": "60",
        "format": "webp",
    }
    assert models.check_options({"quality": "auto", "max_bytes": "5000"}) == {
        "quality": "auto",
        "max_bytes": "5000",
    }
    with pytest.raises(client_errors.UnknownOption, match="qualty") as unknown:
        models.check_options({"qualty": 50})
    assert isinstance(unknown.value, TypeError) and isinstance(unknown.value, client_errors.BadOption)
    for bad in ({"quality": 101}, {"quality": True}, {"format": "bmp"}, {"max_bytes": 5}, {"effort": "hard"}):
        with pytest.raises(client_errors.BadOption):
            models.check_options(bad)
    with Client(f"http://127.0.0.1:{free_port()}", retry=FAST_RETRY) as imgpress:
        sent: list[httpx.Request] = []
        imgpress._http.event_hooks["request"].append(sent.append)
        with pytest.raises(client_errors.UnknownOption):
            imgpress.compress(b"image", qualty=50)  # type: ignore[call-arg]
        with pytest.raises(client_errors.BadOption):
            imgpress.submit(b"image", format="bmp")  # type: ignore[arg-type]
        assert sent == []


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
    assert isinstance(too_large, client_errors.TooLarge) and too_large.message == "about too_large"
    limited = client_errors.from_response(answer(429, error_body("rate_limited"), **{"Retry-After": "7"}))
    assert isinstance(limited, client_errors.RateLimited) and limited.retry_after == 7
    assert isinstance(client_errors.from_response(answer(401, error_body("unauthorized"))), Unauthorized)
    assert isinstance(client_errors.from_response(answer(500)), ServerError)
    unknown = client_errors.from_response(answer(418, error_body("teapot")))
    assert isinstance(unknown, UnexpectedResponse) and unknown.status == 418
    failed = client_errors.error_for("corrupt_image", "cut short")
    assert isinstance(failed, client_errors.CorruptImage)


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


def test_a_missing_file_or_a_folder_is_file_unreadable(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.jpg", tmp_path):
        with pytest.raises(client_errors.FileUnreadable, match=str(path)):
            UploadBody(path)


def test_no_server_is_server_unreachable_after_bounded_retries() -> None:
    seen: list[Retry] = []
    with Client(f"http://127.0.0.1:{free_port()}", retry=FAST_RETRY, on_retry=seen.append) as imgpress:
        with pytest.raises(ServerUnreachable):
            imgpress.status("0" * 32)
    assert [retry.attempt for retry in seen] == [1, 2]


def test_server_sent_events_are_parsed_line_by_line() -> None:
    parser = models.EventParser()
    lines = [": ping", "event: finished", "id: x:finished", 'data: {"id": "x"}', ""]
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert events == [models.Event("finished", "x:finished", {"id": "x"})]
