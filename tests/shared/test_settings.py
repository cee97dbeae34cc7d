"""Settings are read once from the environment; a bad value names its variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import ENVIRONMENT, Settings, SettingsError

A, B, C = "alice-0123456789abcdef", "bob-0123456789abcdef", "carol-0123456789abcdef"


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.port == 8000
    assert settings.max_upload_bytes == 50 * 1024 * 1024
    assert settings.max_pixels == 50_000_000
    assert settings.retention_seconds == 1800
    assert settings.job_timeout_seconds == 120
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.data_dir == Path("data").resolve()
    assert settings.workers >= 1


def test_values_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"IMGPRESS_PORT": "9000", "IMGPRESS_DATA_DIR": "/srv/img", "IMGPRESS_WORKERS": "3"}
    )
    assert (settings.port, settings.data_dir, settings.workers) == (9000, Path("/srv/img"), 3)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IMGPRESS_PORT", "70000"),
        ("IMGPRESS_PORT", "http"),
        ("IMGPRESS_MAX_UPLOAD_BYTES", "-5"),
        ("IMGPRESS_MAX_PIXELS", "0"),
        ("IMGPRESS_RETENTION_SECONDS", "1.5"),
        ("IMGPRESS_REDIS_URL", "localhost:6379"),
        ("IMGPRESS_DATA_DIR", ""),
        ("IMGPRESS_WORKERS", "many"),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_every_field_has_one_variable() -> None:
    variables = [variable for variable, _, _ in ENVIRONMENT.values()]
    assert len(variables) == len(set(variables))
    assert all(variable.startswith("IMGPRESS_") for variable in variables)
    assert set(ENVIRONMENT) == set(Settings.__dataclass_fields__)


def test_settings_page_lists_every_variable_with_its_default() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    rows = {
        line.split("|")[1].strip(" `"): line for line in page.splitlines() if line.startswith("| `IMGPRESS_")
    }
    for variable, _, default in ENVIRONMENT.values():
        assert variable in rows
        if variable != "IMGPRESS_WORKERS":  # its default is the machine's CPU count
            assert f"`{default}`" in rows[variable]


def test_lists_and_rates() -> None:
    settings = Settings.from_env(
        {
            "IMGPRESS_API_KEYS": f"{A}, {B},,{C}",
            "IMGPRESS_RATE_LIMIT": "60/minute",
            "IMGPRESS_CORS_ORIGINS": "",
        }
    )
    assert settings.api_keys == (A, B, C)
    assert settings.rate_limit == (60, 60)
    assert settings.cors_origins == ()
    assert Settings.from_env({}).rate_limit is None


@pytest.mark.parametrize("value", ["60", "60/fortnight", "x/minute", "0/minute"])
def test_bad_rate_limit(value: str) -> None:
    with pytest.raises(SettingsError, match="IMGPRESS_RATE_LIMIT"):
        Settings.from_env({"IMGPRESS_RATE_LIMIT": value})


def test_to_env_round_trips() -> None:
    settings = Settings.from_env(
        {
            "IMGPRESS_API_KEYS": f"{A},{B}",
            "IMGPRESS_RATE_LIMIT": "5/second",
            "IMGPRESS_WEBHOOK_KEY_SECRETS": f"{B}={C}",
        }
    )
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IMGPRESS_WEBHOOK_SECRET", "x"),
        ("IMGPRESS_WEBHOOK_SECRET", "fifteen-chars-x"),
        ("IMGPRESS_API_KEYS", f"{A},short-key"),
        ("IMGPRESS_WEBHOOK_KEY_SECRETS", f"{A}=short"),
        ("IMGPRESS_WEBHOOK_KEY_SECRETS", f"{A}"),
    ],
)
def test_short_secrets_and_keys_are_refused_and_not_shown(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable) as raised:
        Settings.from_env({"IMGPRESS_API_KEYS": A, variable: value})
    assert "short" not in str(raised.value) and "fifteen" not in str(raised.value)


def test_key_secrets_name_configured_keys() -> None:
    settings = Settings.from_env(
        {"IMGPRESS_API_KEYS": f"{A},{B}", "IMGPRESS_WEBHOOK_KEY_SECRETS": f" {A} = {C} "}
    )
    assert settings.webhook_key_secrets == ((A, C),)
    with pytest.raises(SettingsError, match="IMGPRESS_WEBHOOK_KEY_SECRETS"):
        Settings.from_env({"IMGPRESS_API_KEYS": A, "IMGPRESS_WEBHOOK_KEY_SECRETS": f"{B}={C}"})


@pytest.mark.parametrize("module", ["api", "worker", "worker.scheduler"])
def test_each_entry_point_refuses_a_bad_setting_in_one_line(module: str) -> None:
    env = {**os.environ, "IMGPRESS_MAX_FRAMES": "many"}
    done = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "imgpress: IMGPRESS_MAX_FRAMES='many' is not valid: must be a number"
    ]


def test_storage_url_names_a_bucket_and_needs_the_s3_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import settings as settings_module

    assert Settings.from_env({}).storage_url == ""
    assert (
        Settings.from_env({"IMGPRESS_STORAGE_URL": "s3://photos/imgpress"}).storage_url
        == "s3://photos/imgpress"
    )
    for bad in ("/data", "s3://", "s3:///prefix", "gs://bucket"):
        with pytest.raises(SettingsError, match="IMGPRESS_STORAGE_URL"):
            Settings.from_env({"IMGPRESS_STORAGE_URL": bad})
    monkeypatch.setattr(settings_module, "find_spec", lambda name: None)
    with pytest.raises(SettingsError, match=r"IMGPRESS_STORAGE_URL.*\.\[s3\]' in the checkout"):
        Settings.from_env({"IMGPRESS_STORAGE_URL": "s3://photos"})
