"""Where the `imgpress` command writes its outputs, run as a real process against the real
service: modes and dates kept, names and suffixes, collisions, overwrite policies."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import images
from tests.cli import by_name, imgpress, run_json
from tests.ports import free_port
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("cli-outputs"))


def test_outputs_keep_the_inputs_mode_and_with_keep_dates_its_times(stack: Stack, tmp_path: Path) -> None:
    shared_photo, private_photo = tmp_path / "shared.jpg", tmp_path / "private.jpg"
    for path, mode in ((shared_photo, 0o644), (private_photo, 0o640)):
        path.write_bytes(images.jpeg())
        path.chmod(mode)
    os.utime(shared_photo, (1_600_000_000, 1_500_000_000))
    code, _ = run_json(
        "compress", str(shared_photo), str(private_photo), "--server", stack.url, "--keep-dates"
    )
    assert code == 0
    assert stat.S_IMODE((tmp_path / "shared.min.jpg").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.min.jpg").stat().st_mode) == 0o640
    assert (tmp_path / "shared.min.jpg").stat().st_mtime == 1_500_000_000
    # In place: the file is replaced and keeps its mode.
    before = shared_photo.stat().st_size
    code, document = run_json(
        "compress", str(shared_photo), "--suffix", "", "--overwrite", "always", "--server", stack.url
    )
    assert code == 0 and document["files"][0]["output"] == str(shared_photo)
    assert stat.S_IMODE(shared_photo.stat().st_mode) == 0o644 and shared_photo.stat().st_size < before
    # From stdin, a new file gets what the umask allows, never mkstemp's 0600.
    done = imgpress(
        "compress", "-", "--out", str(tmp_path / "out"), "--server", stack.url, stdin=images.jpeg()
    )
    assert done.returncode == 0, done.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out" / "stdin.min.jpg").stat().st_mode) == 0o666 & ~umask


def test_collisions_are_reported_before_anything_is_uploaded(tmp_path: Path) -> None:
    for name in ("a.jpg", "x.JPG", "x.jpg"):
        (tmp_path / name).write_bytes(images.jpeg())
    (tmp_path / "a.png").write_bytes(images.png_with_alpha())
    # No server at this URL: only files that would collide, so nothing is sent and nothing written.
    url = f"http://127.0.0.1:{free_port()}"
    code, document = run_json("compress", str(tmp_path), "--format", "webp", "--server", url)
    assert code == 1
    files = by_name(document)
    assert {name: entry["error"]["code"] for name, entry in files.items()} == dict.fromkeys(
        ("a.jpg", "a.png", "x.JPG", "x.jpg"), "collision"
    )
    assert "a.png" in files["a.jpg"]["error"]["message"] and all(e["job_id"] is None for e in files.values())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.jpg", "a.png", "x.JPG", "x.jpg"]


def test_an_extensionless_input_gets_the_suffix_and_leaves_an_unrelated_file_alone(
    stack: Stack, tmp_path: Path
) -> None:
    (tmp_path / "photo").write_bytes(images.jpeg())
    (tmp_path / "photo.jpg").write_bytes(b"an unrelated file")
    code, document = run_json("compress", str(tmp_path / "photo"), "--server", stack.url)
    assert code == 0 and document["files"][0]["output"] == str(tmp_path / "photo.min.jpg")
    assert (tmp_path / "photo.jpg").read_bytes() == b"an unrelated file"
    # The existing output is named with the format's extension, not the input's.
    (tmp_path / "b.png").write_bytes(images.png_with_alpha())
    (tmp_path / "b.min.webp").write_bytes(b"mine")
    code, document = run_json("compress", str(tmp_path / "b.png"), "--format", "webp", "--server", stack.url)
    entry = document["files"][0]
    assert code == 0 and entry["status"] == "skipped" and entry["output"] == str(tmp_path / "b.min.webp")
    assert (tmp_path / "b.min.webp").read_bytes() == b"mine"


def test_overwrite_policies_skip_existing_and_a_second_run(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(images.jpeg())
    code, first = run_json("compress", str(folder), "--server", stack.url)
    assert code == 0 and first["totals"]["ok"] == 2
    # A second run finds its own outputs neither as inputs nor as failures.
    code, second = run_json("compress", str(folder), "--server", stack.url)
    assert code == 0 and [f["status"] for f in second["files"]] == ["skipped", "skipped"]
    written = (folder / "a.min.jpg").read_bytes()
    (folder / "a.min.jpg").write_bytes(b"x")  # smaller than any output: kept by if-smaller
    (folder / "b.min.jpg").write_bytes(written + b"\0" * 50_000)  # larger: replaced
    code, third = run_json("compress", str(folder), "--overwrite", "if-smaller", "--server", stack.url)
    assert code == 0 and [f["status"] for f in third["files"]] == ["skipped", "ok"]
    assert (folder / "a.min.jpg").read_bytes() == b"x" and len((folder / "b.min.jpg").read_bytes()) < 50_000
    code, fourth = run_json(
        "compress", str(folder), "--overwrite", "always", "--skip-existing", "--server", stack.url
    )
    assert code == 0 and [f["job_id"] for f in fourth["files"]] == [None, None]
    assert (folder / "a.min.jpg").read_bytes() == b"x"


def test_an_empty_suffix_on_a_folder_writes_every_file(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(images.jpeg())
    (folder / "nested" / "b.png").write_bytes(images.png_with_alpha())
    code, document = run_json(
        "compress", str(folder), "--suffix", "", "--out", str(tmp_path / "out"), "--server", stack.url
    )
    assert code == 0 and document["totals"]["ok"] == 2
    assert (tmp_path / "out" / "a.jpg").exists() and (tmp_path / "out" / "nested" / "b.png").exists()


def test_a_long_name_is_cut_in_the_table_and_whole_in_json(stack: Stack, tmp_path: Path) -> None:
    long_name = "holiday " * 25 + "beach.jpg"
    (tmp_path / long_name).write_bytes(images.jpeg())
    run = imgpress("compress", str(tmp_path / long_name), "--server", stack.url, "--out", str(tmp_path / "a"))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.decode().splitlines()
    table = lines[next(index for index, line in enumerate(lines) if line.startswith("file ")) :]
    # The name column is 60 characters: the start of the path, an ellipsis, the end of the name.
    assert max(len(line) for line in table) < 100
    assert table[1].startswith(str(tmp_path)[:20]) and "iday holiday beach.jpg  " in table[1]
    assert "…" in table[1]
    code, document = run_json(
        "compress", str(tmp_path / long_name), "--server", stack.url, "--out", str(tmp_path / "b")
    )
    assert code == 0 and document["files"][0]["input"] == str(tmp_path / long_name)
