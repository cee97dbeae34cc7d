"""The `imgpress` command line, run as a real process against the real service."""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from PIL import Image

from shared.settings import Settings
from tests import images
from tests.images import CORPUS
from tests.ports import free_port
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

IMGPRESS = str(Path(sys.executable).parent / "imgpress")
#: Corpus photos are 768x512 PNGs; three keep the run short while still being real photos.
CORPUS_PHOTOS = 3


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("cli"))


def imgpress(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([IMGPRESS, *args], input=stdin, capture_output=True, timeout=120)


def photo_folder(root: Path) -> Path:
    """Small photos made here, nested, plus bad files; and corpus photos when they are present."""
    folder = root / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(images.jpeg())
    (folder / "nested" / "b.png").write_bytes(images.png_with_alpha())
    (folder / "cut.jpg").write_bytes(images.jpeg()[:2500])
    (folder / "letter.jpg").write_bytes(b"Dear imgpress, this is not a JPEG.\n" * 20)
    (folder / "notes.txt").write_text("not matched by --include")
    return folder


def add_corpus_photos(folder: Path) -> int:
    photos = sorted((CORPUS / "photos").glob("*.png"))[:CORPUS_PHOTOS]
    for photo in photos:
        shutil.copy(photo, folder / "nested" / photo.name)
    return len(photos)


def test_a_folder_with_bad_files_reports_each_and_exits_1(stack: Stack, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    corpus = add_corpus_photos(folder)
    run = imgpress("compress", str(folder), "--json", "--server", stack.url, "--quality", "70")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    by_name = {Path(f["input"]).name: f for f in report["files"]}
    assert "notes.txt" not in by_name
    assert by_name["cut.jpg"]["error"]["code"] == "corrupt_image"
    assert by_name["letter.jpg"]["error"]["code"] == "unsupported_media"
    written = [f for f in report["files"] if f["status"] == "ok"]
    assert len(written) == 2 + corpus
    for entry in written:
        output = Path(entry["output"])
        assert output.parent == Path(entry["input"]).parent and output.stem.endswith(".min")
        assert output.stat().st_size == entry["bytes_out"] <= entry["bytes_in"]
        with Image.open(output) as image:
            image.load()
    totals = report["totals"]
    assert (totals["ok"], totals["failed"]) == (2 + corpus, 2)
    assert totals["saved_bytes"] == sum(f["bytes_in"] - f["bytes_out"] for f in written) > 0
    if corpus == 0:
        pytest.skip(f"only the made-up images were compressed: no corpus photos under {CORPUS / 'photos'}")


def test_out_folder_is_never_overwritten_without_the_flag(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    source.write_bytes(images.jpeg())
    out = tmp_path / "out"
    first = imgpress("compress", str(source), "--out", str(out), "--server", stack.url)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.decode()
    assert f"ok {source} -> {out / 'in.min.jpg'}" in lines and "total" in lines
    written = (out / "in.min.jpg").read_bytes()
    (out / "in.min.jpg").write_bytes(b"mine")
    again = imgpress("compress", str(source), "--out", str(out), "--server", stack.url)
    assert again.returncode == 1 and b"exists (use --overwrite)" in again.stdout
    assert (out / "in.min.jpg").read_bytes() == b"mine"
    forced = imgpress("compress", str(source), "--out", str(out), "--overwrite", "--server", stack.url)
    assert forced.returncode == 0
    assert (out / "in.min.jpg").read_bytes() == written


def test_stdin_to_stdout(stack: Stack) -> None:
    original = images.jpeg()
    run = imgpress("compress", "-", "--server", stack.url, "--quality", "50", stdin=original)
    assert run.returncode == 0, run.stderr
    assert 0 < len(run.stdout) < len(original)
    with Image.open(io.BytesIO(run.stdout)) as image:
        assert image.format == "JPEG"
    assert b"total" in run.stderr


def test_format_and_size_options_reach_the_server(stack: Stack) -> None:
    run = imgpress(
        "compress", "-", "--server", stack.url, "--format", "webp", "--max-width", "100", stdin=images.jpeg()
    )
    assert run.returncode == 0, run.stderr
    with Image.open(io.BytesIO(run.stdout)) as image:
        assert image.format == "WEBP"
        assert image.width == 100 and image.height == 75


@pytest.mark.parametrize(
    "args",
    [
        ["compress", "/no/such/file.jpg"],
        ["compress", "x.jpg", "--quality", "0"],
        ["compress", "x.jpg", "--quality", "best"],
        ["compress"],
        ["compress", "-", "-"],
    ],
)
def test_usage_errors_exit_2(args: list[str], stack: Stack) -> None:
    run = imgpress(*args, "--server", stack.url)
    assert run.returncode == 2
    assert run.stderr


def test_an_unknown_option_value_is_the_servers_400(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(images.jpeg())
    run = imgpress("compress", str(tmp_path / "a.jpg"), "-o", "quality=101", "--server", stack.url, "--json")
    assert run.returncode == 1
    assert json.loads(run.stdout)["files"][0]["error"]["code"] == "bad_option"


def test_no_server_exits_3(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(images.jpeg())
    url = f"http://127.0.0.1:{free_port()}"
    run = imgpress("compress", str(tmp_path / "a.jpg"), "--server", url, "--retries", "0")
    assert run.returncode == 3
    assert b"cannot be reached" in run.stderr


def test_ctrl_c_deletes_the_pending_jobs(redis_databases: DatabasePool, tmp_path: Path) -> None:
    # An API with no worker: every job stays queued until the CLI is interrupted.
    for file in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / file).write_bytes(images.jpeg())
    with redis_databases.database() as url:
        settings = replace(Settings.from_env({}), redis_url=url, data_dir=tmp_path / "data", port=free_port())
        api = Stack(settings, tmp_path)
        api.start_api()
        try:
            api.wait_ready(path="/healthz")
            process = subprocess.Popen(
                [
                    IMGPRESS,
                    "compress",
                    *(str(tmp_path / f) for f in ("a.jpg", "b.jpg", "c.jpg")),
                    "--server",
                    api.url,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stdout is not None
            ids = [process.stdout.readline().split()[-1].decode() for _ in range(3)]
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
            assert process.returncode == 130, stderr
            assert b"deleted 3 pending job(s)" in stderr
            for job_id in ids:
                assert httpx.get(f"{api.url}/v1/jobs/{job_id}").status_code == 410
            assert list((tmp_path).glob("*.min.jpg")) == []
        finally:
            api.stop()
