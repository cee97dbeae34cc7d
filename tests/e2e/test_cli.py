"""The `imgpress` command line, run as a real process against the real service."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from PIL import Image

from shared.settings import Settings
from tests import images
from tests.cli import IMGPRESS, by_name, imgpress, run_json
from tests.images import CORPUS
from tests.ports import free_port
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

#: Corpus photos are 768x512 PNGs; three keep the run short while still being real photos.
CORPUS_PHOTOS = 3


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("cli"))


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


def test_apng_and_mpo_in_a_folder_are_compressed_and_others_counted(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    (folder / "wave.apng").write_bytes(images.palette_apng())
    (folder / "stereo.mpo").write_bytes(images.mpo())
    (folder / "notes.txt").write_text("not an image")
    run = imgpress("compress", str(folder), "--server", stack.url)
    assert run.returncode == 0, run.stderr
    text = run.stdout.decode()
    assert f"ok {folder / 'wave.apng'} -> {folder / 'wave.min.png'} " in text
    assert f"ok {folder / 'stereo.mpo'} -> {folder / 'stereo.min.jpg'} " in text
    assert text.splitlines()[-1] == (
        "2 written, 0 skipped, 0 failed; 1 other file in folders ignored (1 not matching --include)"
    )


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
    assert (
        again.returncode == 0
        and f"skipped {source} -> {out / 'in.min.jpg'}: output exists" in again.stdout.decode()
    )
    assert (out / "in.min.jpg").read_bytes() == b"mine"
    forced = imgpress(
        "compress", str(source), "--out", str(out), "--overwrite", "always", "--server", stack.url
    )
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
        ["compress", "x.jpg", "-o", "quality=101"],
        ["compress", "x.jpg", "-o", "qualty=50"],
        ["compress", "x.jpg", "--format", "bmp"],
        ["compress", "x.jpg", "--server", "127.0.0.1:8000"],
        ["compress", "x.jpg", "--overwrite", "sometimes"],
    ],
)
def test_usage_errors_exit_2_before_any_upload_with_one_json_document(
    args: list[str], tmp_path: Path
) -> None:
    (tmp_path / "x.jpg").write_bytes(images.jpeg())
    # No server listens here: a usage error is found before anything is sent.
    server = ["--server", f"http://127.0.0.1:{free_port()}"] if "--server" not in args else []
    run = subprocess.run(
        [IMGPRESS, *args, *server, "--json"], capture_output=True, timeout=60, cwd=tmp_path, input=b""
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(b"imgpress: ") and b"Traceback" not in run.stderr
    assert json.loads(run.stdout)["error"]["code"] == "usage"


def test_no_server_exits_3_and_json_still_prints_one_document(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(images.jpeg())
    url = f"http://127.0.0.1:{free_port()}"
    run = imgpress("compress", str(tmp_path / "a.jpg"), "--server", url, "--retries", "0")
    assert run.returncode == 3
    # One clear line instead of a table of `not sent` rows totalling "0 B 0 B 0.0%".
    assert run.stdout == b"" and len(run.stderr.splitlines()) == 1, run.stderr
    assert b"cannot be reached" in run.stderr and run.stderr.endswith(b"; 1 file not compressed\n")
    as_json = imgpress("compress", str(tmp_path / "a.jpg"), "--server", url, "--retries", "0", "--json")
    assert as_json.returncode == 3
    document = json.loads(as_json.stdout)
    assert document["error"]["code"] == "server_unreachable"
    assert [f["status"] for f in document["files"]] == ["not_started"]


def test_a_server_answering_404_for_the_api_exits_3_with_a_clear_message(
    stack: Stack, tmp_path: Path
) -> None:
    (tmp_path / "a.jpg").write_bytes(images.jpeg())
    run = imgpress("compress", str(tmp_path / "a.jpg"), "--server", f"{stack.url}/v1")
    assert run.returncode == 3, run.stderr
    assert b"No imgpress API at " in run.stderr and b"Traceback" not in run.stderr
    assert not list(tmp_path.glob("*.min.*"))


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
            # With --json, the one document still comes, saying the run was cancelled.
            command = [IMGPRESS, "compress", str(tmp_path / "a.jpg"), "--server", api.url, "--json"]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 30
            while not list((tmp_path / "data").glob("jobs/*/input")) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
            assert process.returncode == 130, stderr
            document = json.loads(stdout)
            assert document["error"]["code"] == "cancelled" and "deleted" in document["error"]["message"]
        finally:
            api.stop()


def test_dry_run_quiet_version_and_max_size(stack: Stack, tmp_path: Path) -> None:
    for name in ("a.jpg", "c.avif", "d.heic"):
        (tmp_path / name).write_bytes(images.jpeg())
    url = f"http://127.0.0.1:{free_port()}"  # a dry run sends nothing
    code, document = run_json("compress", str(tmp_path), "--dry-run", "--server", url)
    assert code == 0 and {f["status"] for f in document["files"]} == {"planned"}
    assert sorted(by_name(document)) == ["a.jpg", "c.avif", "d.heic"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.jpg", "c.avif", "d.heic"]
    quiet = imgpress("compress", str(tmp_path / "a.jpg"), "--quiet", "--server", stack.url)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, b"", b"")
    version = imgpress("--version")
    assert version.returncode == 0 and re.fullmatch(rb"imgpress \d+\.\d+\.\d+\n", version.stdout)
    big = images.encode(images.photo(1024, 768), "JPEG", quality=95)
    (tmp_path / "big.jpg").write_bytes(big)
    code, document = run_json(
        "compress", str(tmp_path / "big.jpg"), "--max-size", "30k", "--effort", "fast", "--server", stack.url
    )
    assert code == 0, document
    entry = document["files"][0]
    assert entry["bytes_out"] <= 30_000 < len(big)
    job = httpx.get(f"{stack.url}/v1/jobs/{entry['job_id']}").json()
    assert (job["options"]["max_bytes"], job["options"]["effort"]) == (30_000, "fast")


def test_a_refused_key_is_found_once_before_uploading(redis_databases: DatabasePool, tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(images.jpeg())
    (tmp_path / "stack").mkdir()
    for stack in running_stack(redis_databases, tmp_path / "stack", api_keys=("key-one-0123456789",)):
        for key in ([], ["--api-key", "wrong"]):
            code, document = run_json(
                "compress", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), *key, "--server", stack.url
            )
            assert code == 2 and document["error"]["code"] == "unauthorized"
            assert [f["job_id"] for f in document["files"]] == [None, None]
        code, document = run_json(
            "compress", str(tmp_path / "a.jpg"), "--api-key", "key-one-0123456789", "--server", stack.url
        )
        assert code == 0, document


def test_a_server_lost_mid_run_exits_3(redis_databases: DatabasePool, tmp_path: Path) -> None:
    # An API with no worker: the jobs stay queued until the API is killed under the CLI.
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(images.jpeg())
    with redis_databases.database() as url:
        settings = replace(Settings.from_env({}), redis_url=url, data_dir=tmp_path / "data", port=free_port())
        api = Stack(settings, tmp_path)
        api.start_api()
        try:
            api.wait_ready(path="/healthz")
            command = [IMGPRESS, "compress", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
            process = subprocess.Popen(
                [*command, "--server", api.url, "--retries", "0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stdout is not None
            for _ in range(2):
                assert process.stdout.readline().startswith(b"queued ")
            os.killpg(api.processes["api"].pid, signal.SIGKILL)
            stdout, stderr = process.communicate(timeout=60)
            assert process.returncode == 3, stderr
            assert b"lost the server" in stderr and b"Traceback" not in stderr
        finally:
            api.stop()


def test_a_closed_pipe_is_quiet(stack: Stack, tmp_path: Path) -> None:
    for index in range(4):
        (tmp_path / f"{index}.jpg").write_bytes(images.jpeg())
    done = subprocess.run(
        ["bash", "-c", f'"{IMGPRESS}" compress "{tmp_path}" --server {stack.url} | head -n 1'],
        capture_output=True,
        timeout=120,
    )
    assert done.stdout.startswith(b"queued ") and done.stdout.count(b"\n") == 1
    assert done.stderr == b"", done.stderr
    assert len(list(tmp_path.glob("*.min.jpg"))) == 4


def test_a_terminal_gets_a_progress_line_that_redraws_cleanly(stack: Stack, tmp_path: Path) -> None:
    names = [f"{'é' * 3}-{index}.jpg" for index in range(3)]
    for name in names:
        (tmp_path / name).write_bytes(images.jpeg())
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [IMGPRESS, "compress", str(tmp_path), "--server", stack.url],
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
        )
        os.close(terminal)
        drawn = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(controller, 65536):
                drawn += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0
    frames = [frame for frame in drawn.decode().split("\r\x1b[K") if frame]
    assert frames and all("\r" not in frame and "\n" not in frame for frame in frames)
    assert any(re.match(r"\[\d/3\] .* \S+/s ETA \S+ .*é{3}-\d\.jpg$", frame) for frame in frames), frames
    assert drawn.decode().endswith("\r\x1b[K")  # the last redraw leaves a clean line
    assert b"3 written" in done.stdout


def test_a_long_decomposed_quoted_name_keeps_its_name(stack: Stack, tmp_path: Path) -> None:
    stem = unicodedata.normalize("NFD", "Café déjà vu ") + '"quoted" it\'s ' + "x" * 200
    source = tmp_path / f"{stem}.jpg"
    source.write_bytes(images.jpeg())
    code, document = run_json("compress", str(source), "--server", stack.url)
    assert code == 0, document
    output = tmp_path / f"{stem}.min.jpg"
    assert document["files"][0]["output"] == str(output) and output.stat().st_size > 0
    # In place without --overwrite is a skip that says how to replace the file.
    code, document = run_json("compress", str(source), "--suffix", "", "--server", stack.url)
    entry = document["files"][0]
    assert code == 0 and entry["status"] == "skipped" and "would be the input" in entry["reason"]


def test_an_empty_file_is_said_to_be_empty(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    run = imgpress("compress", str(tmp_path / "empty.jpg"), "--json", "--server", stack.url)
    assert run.returncode == 1, run.stderr
    (only,) = json.loads(run.stdout)["files"]
    assert only["error"]["message"] == "The file is empty (0 bytes).", only
