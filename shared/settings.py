"""Settings, read once from the environment into a frozen dataclass.

Every variable, with its default, is listed in docs/settings.md and .env.example.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from importlib.util import find_spec
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


class SettingsError(ValueError):
    """Raised at start-up when an environment variable has a bad value; names the variable."""


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or a positive whole number")
    return value


def _words(raw: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in raw.split(",") if word.strip())


RATE_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def _addresses(raw: str) -> tuple[str, ...]:
    """'10.0.0.1, 10.1.0.0/16' -> a tuple of checked addresses or networks ('*' trusts every peer)."""
    words = _words(raw)
    for word in words:
        if word != "*":
            try:
                ipaddress.ip_network(word, strict=False)
            except ValueError:
                raise ValueError(f"{word!r} is not an IP address or network") from None
    return words


def _rate(raw: str) -> tuple[int, int] | None:
    """'60/minute' -> (60, 60); '' -> None (no limit)."""
    if not raw:
        return None
    count, _, period = raw.partition("/")
    if period not in RATE_PERIODS:
        raise ValueError("must look like 60/minute (per second, minute, hour or day)")
    return _positive_int(count), RATE_PERIODS[period]


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("must be a port number from 1 to 65535")
    return value


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return raw


def _path(raw: str) -> Path:
    if not raw:
        raise ValueError("must not be empty")
    return Path(raw).expanduser().resolve()


_FLAGS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def _flag(raw: str) -> bool:
    try:
        return _FLAGS[raw.lower()]
    except KeyError:
        raise ValueError("must be true or false") from None


#: Fewest characters of an API key or a webhook secret: shorter ones can be guessed.
MIN_SECRET_LENGTH = 16


def _secret(raw: str) -> str:
    if raw and len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be empty or at least {MIN_SECRET_LENGTH} characters long")
    return raw


def _keys(raw: str) -> tuple[str, ...]:
    keys = _words(raw)
    if any(len(key) < MIN_SECRET_LENGTH for key in keys):
        raise ValueError(f"each key must be at least {MIN_SECRET_LENGTH} characters long")
    return keys


def _key_secrets(raw: str) -> tuple[tuple[str, str], ...]:
    """'key1=secret1,key2=secret2' -> (("key1", "secret1"), ("key2", "secret2"))."""
    pairs = []
    for word in _words(raw):
        key, equals, secret = word.partition("=")
        if not equals or not key.strip():
            raise ValueError("must look like <api key>=<secret>,<api key>=<secret>")
        if len(secret.strip()) < MIN_SECRET_LENGTH:
            raise ValueError(f"each secret must be at least {MIN_SECRET_LENGTH} characters long")
        pairs.append((key.strip(), secret.strip()))
    return tuple(pairs)


def _storage_url(raw: str) -> str:
    if raw and not raw.startswith("s3://"):
        raise ValueError("must be empty (the data directory) or look like s3://bucket/prefix")
    if raw and not raw.removeprefix("s3://").split("/", 1)[0]:
        raise ValueError("names no bucket; it must look like s3://bucket/prefix")
    if raw and (find_spec("obstore") is None or find_spec("boto3") is None):
        raise ValueError(
            "a bucket needs obstore and boto3: pip install '.[s3]' in the checkout (scripts/run does it)"
        )
    return raw


def _text(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


# Field name -> (environment variable, parser, default as the environment would spell it).
# The defaults live here and nowhere else.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "redis_url": ("IMGPRESS_REDIS_URL", _redis_url, "redis://127.0.0.1:6379/0"),
    "data_dir": ("IMGPRESS_DATA_DIR", _path, "./data"),
    "host": ("IMGPRESS_HOST", _text, "127.0.0.1"),
    "port": ("IMGPRESS_PORT", _port, "8000"),
    "header_timeout_seconds": ("IMGPRESS_HEADER_TIMEOUT_SECONDS", _positive_int, "10"),
    "body_timeout_seconds": ("IMGPRESS_BODY_TIMEOUT_SECONDS", _positive_int, "30"),
    "min_upload_rate": ("IMGPRESS_MIN_UPLOAD_RATE", _positive_int, "16384"),
    "keepalive_seconds": ("IMGPRESS_KEEPALIVE_SECONDS", _positive_int, "5"),
    "max_connections": ("IMGPRESS_MAX_CONNECTIONS", _positive_int, "1000"),
    "redis_max_connections": ("IMGPRESS_REDIS_MAX_CONNECTIONS", _positive_int, "500"),
    "forwarded_allow_ips": ("IMGPRESS_FORWARDED_ALLOW_IPS", _addresses, ""),
    "max_upload_bytes": ("IMGPRESS_MAX_UPLOAD_BYTES", _positive_int, str(50 * MIB)),
    "max_pixels": ("IMGPRESS_MAX_PIXELS", _positive_int, "50000000"),
    "max_frames": ("IMGPRESS_MAX_FRAMES", _positive_int, "1000"),
    "retention_seconds": ("IMGPRESS_RETENTION_SECONDS", _positive_int, "1800"),
    "job_timeout_seconds": ("IMGPRESS_JOB_TIMEOUT_SECONDS", _positive_int, "120"),
    "sweep_interval_seconds": ("IMGPRESS_SWEEP_INTERVAL_SECONDS", _positive_int, "30"),
    "workers": ("IMGPRESS_WORKERS", _positive_int, str(os.cpu_count() or 1)),
    "worker_memory_mb": ("IMGPRESS_WORKER_MEMORY_MB", _non_negative_int, "1024"),
    "max_queued": ("IMGPRESS_MAX_QUEUED", _positive_int, "1000"),
    "api_keys": ("IMGPRESS_API_KEYS", _keys, ""),
    "rate_limit": ("IMGPRESS_RATE_LIMIT", _rate, ""),
    "cors_origins": ("IMGPRESS_CORS_ORIGINS", _words, ""),
    "max_batch_files": ("IMGPRESS_MAX_BATCH_FILES", _positive_int, "50"),
    "webhook_secret": ("IMGPRESS_WEBHOOK_SECRET", _secret, ""),
    "webhook_key_secrets": ("IMGPRESS_WEBHOOK_KEY_SECRETS", _key_secrets, ""),
    "webhook_allow_private": ("IMGPRESS_WEBHOOK_ALLOW_PRIVATE", _flag, "false"),
    "webhook_workers": ("IMGPRESS_WEBHOOK_WORKERS", _positive_int, "1"),
    "storage_url": ("IMGPRESS_STORAGE_URL", _storage_url, ""),
    "s3_presign": ("IMGPRESS_S3_PRESIGN", _flag, "false"),
}


@dataclass(frozen=True)
class Settings:
    """Everything imgpress can be configured with; see docs/settings.md for each variable."""

    redis_url: str
    data_dir: Path
    host: str
    port: int
    #: Seconds a client has to send a request's headers; the connection is closed after that.
    header_timeout_seconds: int
    #: Longest wait for the next piece of an upload's body, in seconds; 408 after that.
    body_timeout_seconds: int
    #: Slowest average upload, in bytes per second, once the first body timeout has passed; 408 below.
    min_upload_rate: int
    #: Seconds an idle keep-alive connection stays open.
    keepalive_seconds: int
    #: Requests one API process serves at once (probes aside); 503 + Retry-After beyond.
    max_connections: int
    #: Size of each Redis connection pool of one API process; a request waits briefly for a free one.
    redis_max_connections: int
    #: Proxies (addresses or networks) whose X-Forwarded-For/-Proto are believed; empty = none.
    forwarded_allow_ips: tuple[str, ...]
    max_upload_bytes: int
    max_pixels: int
    max_frames: int
    retention_seconds: int
    job_timeout_seconds: int
    sweep_interval_seconds: int
    workers: int
    #: Address-space cap (RLIMIT_AS) of the process that decodes, in MiB; 0 means no cap.
    worker_memory_mb: int
    #: Uploads are refused with 503 while this many jobs wait in the queue.
    max_queued: int
    #: When non-empty, /v1 and the seed routes need `Authorization: Bearer <one of these>`.
    api_keys: tuple[str, ...]
    #: Uploads allowed per key (or client address) per period: (count, seconds), or None.
    rate_limit: tuple[int, int] | None
    #: Origins allowed by CORS; empty means CORS is off.
    cors_origins: tuple[str, ...]
    #: Most files one POST /v1/batches may carry.
    max_batch_files: int
    #: Key of the HMAC-SHA256 signature on webhook POSTs; empty means callback_url is refused.
    webhook_secret: str
    #: (API key, secret) pairs: that key's deliveries are signed with its own secret instead.
    webhook_key_secrets: tuple[tuple[str, str], ...]
    #: Allow callback_url hosts on loopback, link-local and private networks (tests, closed setups).
    webhook_allow_private: bool
    #: Processes that deliver webhooks, apart from the compression workers.
    webhook_workers: int
    #: Where job files live: empty for data_dir/jobs, or s3://bucket/prefix (the `s3` extra).
    storage_url: str
    #: With S3, downloads redirect to a short-lived presigned URL instead of passing through the API.
    s3_presign: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; raises SettingsError naming a bad variable."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            variable, parse, default = ENVIRONMENT[field.name]
            raw = environ.get(variable, default).strip()
            try:
                values[field.name] = parse(raw)
            except ValueError as exc:
                reason = str(exc) if not str(exc).startswith("invalid literal") else "must be a number"
                shown = "(hidden)" if parse in (_secret, _keys, _key_secrets) else repr(raw)
                raise SettingsError(f"{variable}={shown} is not valid: {reason}") from None
        unknown = [key for key, _ in values["webhook_key_secrets"] if key not in values["api_keys"]]
        if unknown:
            raise SettingsError(
                "IMGPRESS_WEBHOOK_KEY_SECRETS is not valid: each key must also be in IMGPRESS_API_KEYS"
            )
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment variables that configure another process with these settings."""
        return {variable: _format(getattr(self, name)) for name, (variable, _, _) in ENVIRONMENT.items()}


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        count, seconds = value
        period = next(name for name, length in RATE_PERIODS.items() if length == seconds)
        return f"{count}/{period}"
    if isinstance(value, tuple) and all(isinstance(pair, tuple) for pair in value):
        return ",".join(f"{key}={secret}" for key, secret in value)
    if isinstance(value, tuple):
        return ",".join(value)
    return "" if value is None else str(value)


def from_environment_or_exit() -> Settings:
    """The settings in os.environ, for a process's entry point: a bad value ends the process
    (status 2) with one line that names the variable."""
    try:
        return Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"imgpress: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
