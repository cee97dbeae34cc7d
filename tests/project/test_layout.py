"""The layout is the architecture: api and worker never import each other, screening and
filestore import neither, shared imports none of the four, and the client imports nothing of the
server while none of its packages imports the client."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client" / "src" / "imgpress"
FORBIDDEN = {
    "shared": {"api", "worker", "screening", "filestore", "imgpress"},
    "screening": {"api", "worker", "filestore", "imgpress"},
    "filestore": {"api", "worker", "screening", "imgpress"},
    "api": {"worker", "imgpress"},
    "worker": {"api", "imgpress"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_boundaries(package: str) -> None:
    for module in (ROOT / package).rglob("*.py"):
        crossing = imported_packages(module) & FORBIDDEN[package]
        assert not crossing, f"{module.relative_to(ROOT)} imports {crossing}"


def test_api_enqueues_by_name_only() -> None:
    from shared import names

    for task in (names.COMPRESS_TASK, names.EXPIRE_TASK, names.SWEEP_TASK):
        module, function = task.rsplit(".", 1)
        assert module == "worker.tasks"
        import worker.tasks

        assert callable(getattr(worker.tasks, function))


def test_top_level_layout() -> None:
    for name in (*FORBIDDEN, "scripts", "tests", "pyproject.toml", "docker-compose.yml"):
        assert (ROOT / name).exists(), name
    for script in ("scripts/run", "scripts/test", ".ci/run"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"


def test_the_client_imports_nothing_of_the_server() -> None:
    for module in CLIENT.rglob("*.py"):
        crossing = imported_packages(module) & {"api", "worker", "shared", "screening", "filestore"}
        assert not crossing, f"{module.relative_to(ROOT)} imports {crossing}"
    server_only = [
        *("api", "worker", "shared", "screening", "filestore", "redis", "rq", "rq_scheduler", "PIL", "magic"),
        *("starlette", "uvicorn", "python_multipart"),
    ]
    blocked = f"import sys\nfor name in {server_only!r}: sys.modules[name] = None\n"
    code = blocked + "import imgpress, imgpress.cli\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=CLIENT.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_package_has_boundaries_is_type_checked_and_shipped_but_never_installed() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(FORBIDDEN)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # The server runs from its checkout: installing it must put no `api` or `shared` in site-packages.
    assert project["project"]["name"] == "imgpress-server"
    assert project["tool"]["setuptools"]["packages"] == []
    assert "scripts" not in project["project"]
    assert set(project["tool"]["mypy"]["packages"]) == packages | {"imgpress"}
    assert project["tool"]["mypy"]["mypy_path"] == "client/src"
    client = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())
    assert client["project"]["name"] == "imgpress"
    assert client["project"]["dependencies"] == ["httpx>=0.27,<1"]
    assert client["project"]["scripts"] == {"imgpress": "imgpress.cli:main"}
    assert (CLIENT / "py.typed").exists()
    copied = re.findall(r"^COPY (\w+) \./(\w+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert {source for source, target in copied if source == target} == packages
