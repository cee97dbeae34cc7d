"""The client installed alone into a fresh venv outside the repository, as a user would: what it
brings in, `imgpress --help`, the README's example against a real stack, and `mypy --strict`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import images
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: What installing the client may bring: the client, httpx and httpx's own dependencies.
ALLOWED = {"imgpress", "httpx", "httpcore", "anyio", "idna", "certifi", "h11", "sniffio", "typing-extensions"}
#: Nothing of the server may become importable.
SERVER_PACKAGES = (
    "api",
    "worker",
    "shared",
    "screening",
    "filestore",
    "redis",
    "rq",
    "PIL",
    "starlette",
    "cv2",
)


def clean_env() -> dict[str, str]:
    """The environment without anything that points Python at this repository."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "MYPYPATH", "VIRTUAL_ENV")
    }


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv in a temporary folder with `pip install ./client` done, and nothing else."""
    home = tmp_path_factory.mktemp("fresh")
    # Built from a copy: pip builds in the source folder, which must stay clean.
    source = shutil.copytree(
        ROOT / "client", home / "client", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True, env=clean_env(), cwd=home)
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    done = subprocess.run(
        [*pip, "install", str(source)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=home,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return home / "venv"


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("install"))


def python(venv: Path, code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean_env(), **env},
        timeout=120,
    )


def installed(venv: Path) -> dict[str, int]:
    """Each distribution the venv holds (but pip and setuptools) with its size on disk in bytes."""
    code = """
import importlib.metadata as m, json, os
sizes = {}
for dist in m.distributions():
    name = dist.metadata["Name"].lower().replace("_", "-")
    if name in ("pip", "setuptools"):
        continue
    files = [dist.locate_file(f) for f in dist.files or ()]
    sizes[name] = sum(os.path.getsize(f) for f in files if os.path.isfile(f))
print(json.dumps(sizes))
"""
    done = python(venv, code, venv)
    assert done.returncode == 0, done.stderr
    found: dict[str, int] = json.loads(done.stdout)
    return found


def test_the_client_brings_httpx_and_nothing_of_the_server(
    venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = installed(venv)
    with capsys.disabled():
        listing = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sorted(sizes.items()))
        print(f"\nclient install: {len(sizes)} distributions, {sum(sizes.values()) / 1e6:.2f} MB: {listing}")
    assert "imgpress" in sizes and "httpx" in sizes
    assert set(sizes) <= ALLOWED, set(sizes) - ALLOWED
    assert sum(sizes.values()) < 5_000_000
    probe = f"import importlib.util as u; print([n for n in {SERVER_PACKAGES!r} if u.find_spec(n)])"
    done = python(venv, probe, venv.parent)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
    typed = python(
        venv,
        "import imgpress, pathlib; print((pathlib.Path(imgpress.__file__).parent / 'py.typed').exists())",
        venv.parent,
    )
    assert typed.stdout.strip() == "True"


def test_the_command_runs_from_the_fresh_venv(venv: Path) -> None:
    for args in (["--help"], ["compress", "--help"], ["--version"]):
        done = subprocess.run(
            [str(venv / "bin" / "imgpress"), *args],
            capture_output=True,
            text=True,
            env=clean_env(),
            cwd=venv.parent,
        )
        assert done.returncode == 0, done.stderr
    assert "--overwrite {never,always,if-smaller}" in done.stdout or done.stdout.startswith("imgpress ")


def readme_example() -> str:
    """The README's Python example."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert len(blocks) == 1
    return str(blocks[0])


def test_the_readmes_example_and_the_examples_file_run_against_a_real_stack(
    venv: Path, stack: Stack, tmp_path: Path
) -> None:
    (tmp_path / "photo.jpg").write_bytes(images.jpeg())
    (tmp_path / "other.png").write_bytes(images.png_with_alpha())
    code = readme_example().replace("http://127.0.0.1:8000", stack.url)
    done = python(venv, code, tmp_path)
    assert done.returncode == 0, done.stderr
    original = (tmp_path / "photo.jpg").read_bytes()
    assert re.fullmatch(r"\d+ -> \d+ small/photo\.jpg\n", done.stdout), done.stdout
    assert (tmp_path / "photo.jpg").read_bytes() == original
    assert 0 < len((tmp_path / "small" / "photo.jpg").read_bytes()) < len(original)
    # Run again, it replaces nothing: the output it saved before stays, and it says why.
    (tmp_path / "small" / "photo.jpg").write_bytes(b"saved before")
    done = python(venv, code, tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("not saved: small/photo.jpg exists"), done.stdout
    assert (tmp_path / "small" / "photo.jpg").read_bytes() == b"saved before"
    # A text file named like a photo: the example says why in one line, with no traceback.
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "photo.jpg").write_text("not an image at all\n")
    done = python(venv, code, notes)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("not saved: This file type is not supported."), done.stdout
    assert done.stderr == "" and not (notes / "small").exists()
    example = ROOT / "client" / "examples" / "quickstart.py"
    done = subprocess.run(
        [str(venv / "bin" / "python"), str(example), "photo.jpg", "other.png"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean_env(), "IMGPRESS_URL": stack.url},
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "batch job photo.jpg: finished" in done.stdout and "many other.png: " in done.stdout


def test_mypy_strict_passes_on_the_example_and_catches_a_misspelt_option(venv: Path, tmp_path: Path) -> None:
    example = tmp_path / "quickstart.py"
    example.write_text((ROOT / "client" / "examples" / "quickstart.py").read_text())
    mypy = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--no-incremental",
        "--python-executable",
        str(venv / "bin" / "python"),
    ]
    done = subprocess.run(
        [*mypy, example.name], capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=300
    )
    assert done.returncode == 0, done.stdout
    example.write_text(example.read_text().replace('quality=70, format="webp"', 'qualty=70, format="bmp"'))
    done = subprocess.run(
        [*mypy, example.name], capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=300
    )
    assert done.returncode == 1
    assert '"qualty"' in done.stdout and "Literal['bmp']" in done.stdout, done.stdout
