"""docker-compose.yml, Dockerfile and .env.example agree with the code they run.

No Docker is needed: the files are parsed and every command is checked against the console
scripts, queue names and settings that are really installed.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import tomllib
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click
import rq
import yaml

from shared import names
from shared.settings import ENVIRONMENT, Settings
from worker.rqworker import ImgpressWorker

ROOT = Path(__file__).resolve().parents[1]
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


def parse_click(script: EntryPoint, args: list[str]) -> dict[str, Any]:
    """Parse arguments with the script's own click command, without running it."""
    cli = script.load()
    assert isinstance(cli, click.Command)
    return cli.make_context(script.name, list(args)).params


def assert_serves_the_api(words: list[str]) -> Settings:
    """Fail unless the words are `python -m api` (the one way to serve it, with its HTTP limits);
    return the settings it would serve with inside the image."""
    assert words == ["python", "-m", "api"]
    assert callable(getattr(importlib.import_module("api.__main__"), "main", None))
    return Settings.from_env(image_environment())


def image_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set."""
    found: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            for word in shlex.split(arguments):
                name, _, value = word.partition("=")
                found[name] = value
    return found


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


def test_services_are_exactly_the_five_processes() -> None:
    assert set(compose()["services"]) == {"redis", "api", "worker", "scheduler", "dashboard"}


def test_redis_keeps_an_append_only_file_on_a_named_volume() -> None:
    redis = service("redis")
    words = command("redis")
    assert words[0] == "redis-server"
    assert option(words, "--appendonly") == "yes"
    assert any(volume.split(":")[:2] == ["redis-data", "/data"] for volume in redis["volumes"])
    assert "redis-data" in compose()["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_api_command_serves_the_app_on_every_interface() -> None:
    settings = assert_serves_the_api(command("api"))
    # Inside the container it must listen on all interfaces or the published port is dead.
    assert settings.host == "0.0.0.0"
    assert f"127.0.0.1:{settings.port}:{settings.port}" in service("api")["ports"]


def test_worker_runs_stock_rq_worker_pool_on_maintenance_queue_first() -> None:
    words = command("worker")
    assert words[:2] == ["rq", "worker-pool"]
    script = console_script("rq")
    assert installed_by(script) == "rq"
    cli = script.load()
    assert isinstance(cli, click.Group)
    pool = cli.commands["worker-pool"]
    params = pool.make_context("worker-pool", words[2:]).params
    assert list(params["queues"]) == list(names.WORKER_QUEUES)
    assert params["queues"][0] == names.MAINTENANCE_QUEUE
    assert params["url"] == environment("worker")["IMGPRESS_REDIS_URL"]
    # The class must exist and be the in-process one the benchmarks chose.
    module, _, name = params["worker_class"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is ImgpressWorker
    assert issubclass(ImgpressWorker, rq.SimpleWorker)


def test_scripts_run_starts_the_same_worker_command() -> None:
    run = (ROOT / "scripts" / "run").read_text()
    assert "worker-pool" in run and "--worker-class worker.rqworker.ImgpressWorker" in run
    assert "imgpress-maintenance imgpress" in run


def test_scheduler_runs_rqscheduler_from_rq_scheduler() -> None:
    words = command("scheduler")
    assert words[0] == "rqscheduler"
    assert installed_by(console_script("rqscheduler")) == "rq-scheduler"
    assert option(words, "--url") == environment("api")["IMGPRESS_REDIS_URL"]


def test_dashboard_runs_rq_dashboard_behind_its_guard() -> None:
    words = command("dashboard")
    assert words[:3] == ["python", "-m", "shared.dashboard"]
    assert callable(getattr(importlib.import_module("shared.dashboard"), "main", None))
    assert option(words, "--redis-url") == environment("api")["IMGPRESS_REDIS_URL"]
    port = option(words, "--port")
    assert service("dashboard")["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_redis_urls_point_at_the_redis_service() -> None:
    urls = [environment(name)["IMGPRESS_REDIS_URL"] for name in ("api", "worker")]
    urls += [option(command("worker"), "--url"), option(command("scheduler"), "--url")]
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


def test_dockerfile_installs_libmagic_and_the_dashboard_extra() -> None:
    runs = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "RUN"]
    assert any(re.search(r"apt-get install\b.*\blibmagic1\b", run) for run in runs)
    assert any(re.search(r"pip install\b.*'\.\[dashboard\]'", run) for run in runs)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(re.match(r"rq-dashboard\b", requirement) for requirement in extras["dashboard"])


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_default_command_serves_the_api() -> None:
    instructions = dict(dockerfile_instructions())
    words = exec_words(instructions.get("ENTRYPOINT", "[]")) + exec_words(instructions["CMD"])
    settings = assert_serves_the_api(words)
    assert ("EXPOSE", str(settings.port)) in dockerfile_instructions()
