"""The command line before any upload: its flags, and the plan (names, extensions, collisions)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from imgpress import cli, plan
from screening import imaging
from tests import images


def planned(tmp_path: Path, *args: str) -> tuple[argparse.Namespace, list[plan.Task]]:
    parsed = cli.parser().parse_args(["compress", *args])
    return parsed, plan.plan(parsed, cli.server_options(parsed).get("format")).tasks


def test_sizes_take_units() -> None:
    assert [cli.byte_size(text) for text in ("200000", "200k", "200kB", "1.5M", "300KiB")] == [
        200_000,
        200_000,
        200_000,
        1_500_000,
        307_200,
    ]
    with pytest.raises(argparse.ArgumentTypeError):
        cli.byte_size("big")


def test_formats_are_sniffed_for_the_output_extension() -> None:
    assert plan.sniffed_format(images.jpeg()[:16]) == "jpeg"
    assert plan.sniffed_format(images.png_with_alpha()[:16]) == "png"
    assert plan.sniffed_format(b"\0\0\0\x1cftypheic\0\0\0\0") == "jpeg"  # the server answers HEIC with JPEG
    assert plan.sniffed_format(b"\0\0\0\x1cftypavif\0\0\0\0") == "avif"
    assert plan.output_extension("auto", images.jpeg()[:16]) is None
    assert plan.output_extension("webp", b"") == ".webp"


def test_an_extensionless_input_gets_the_suffix_and_the_formats_extension(tmp_path: Path) -> None:
    (tmp_path / "photo").write_bytes(images.jpeg())
    (tmp_path / "IMG.2024").write_bytes(images.png_with_alpha())
    _, tasks = planned(tmp_path, str(tmp_path / "photo"), str(tmp_path / "IMG.2024"))
    assert [task.destination for task in tasks] == [tmp_path / "photo.min.jpg", tmp_path / "IMG.2024.min.png"]


def test_collisions_are_found_case_blind_and_across_formats(tmp_path: Path) -> None:
    for name in ("a.jpg", "x.JPG", "x.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(images.jpeg())
    (tmp_path / "a.png").write_bytes(images.png_with_alpha())
    _, tasks = planned(tmp_path, str(tmp_path), "--format", "webp")
    problems = plan.find_collisions(tasks)
    assert sorted(Path(tasks[i].label).name for i in problems) == ["a.jpg", "a.png", "x.JPG", "x.jpg"]
    a_jpg = next(i for i, task in enumerate(tasks) if task.label.endswith("a.jpg"))
    assert "a.png" in problems[a_jpg] and "a.min.webp" in problems[a_jpg]
    _, same_format = planned(tmp_path, str(tmp_path / "a.jpg"), str(tmp_path / "a.png"))
    assert plan.find_collisions(same_format) == {}
    _, auto = planned(tmp_path, str(tmp_path / "a.jpg"), str(tmp_path / "a.png"), "--format", "auto")
    assert set(plan.find_collisions(auto)) == {0, 1}


def test_an_output_that_is_another_input_collides(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(images.png_with_alpha())
    (tmp_path / "a.webp").write_bytes(b"RIFF\0\0\0\0WEBPVP8 ")
    _, tasks = planned(
        tmp_path, str(tmp_path / "a.png"), str(tmp_path / "a.webp"), "--format", "webp", "--suffix", ""
    )
    assert set(plan.find_collisions(tasks)) == {0, 1}


def test_a_folder_with_an_empty_suffix_finds_its_files_and_the_default_takes_avif_and_heic(
    tmp_path: Path,
) -> None:
    for name in ("a.jpg", "b.avif", "c.heic", "d.HEIF", "e.min.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    _, tasks = planned(tmp_path, str(tmp_path), "--suffix", "", "--out", str(tmp_path / "out"))
    assert sorted(Path(task.label).name for task in tasks) == [
        "a.jpg",
        "b.avif",
        "c.heic",
        "d.HEIF",
        "e.min.jpg",
    ]
    _, tasks = planned(tmp_path, str(tmp_path))
    assert "e.min.jpg" not in {Path(task.label).name for task in tasks}


def test_the_default_include_is_every_type_the_server_accepts() -> None:
    assert set(plan.ACCEPTED_EXTENSIONS) == set(imaging.SNIFFED)
    # Pillow formats the server takes as one of its own (an MPO is a JPEG) have extensions too.
    for alias in imaging._ALIASES:
        assert f".{alias.lower()}" in plan.IMAGE_SUFFIXES, alias
    assert {f"*{suffix}" for suffix in plan.IMAGE_SUFFIXES} == set(plan.DEFAULT_INCLUDE)


def test_a_folder_gives_apng_and_mpo_and_counts_what_it_ignores(tmp_path: Path) -> None:
    (tmp_path / "a.apng").write_bytes(images.palette_apng())
    (tmp_path / "b.MPO").write_bytes(images.mpo())
    (tmp_path / "c.jfif").write_bytes(images.jpeg())
    for name in ("e.min.jpg", "notes.txt", "scan.bmp"):
        (tmp_path / name).write_bytes(b"x")
    parsed = cli.parser().parse_args(["compress", str(tmp_path)])
    planned = plan.plan(parsed, None)
    assert [task.destination for task in planned.tasks] == [
        tmp_path / "a.min.png",
        tmp_path / "b.min.jpg",
        tmp_path / "c.min.jpg",
    ]
    assert planned.ignored == {
        str(tmp_path / "e.min.jpg"): plan.AN_OUTPUT,
        str(tmp_path / "notes.txt"): plan.NOT_INCLUDED,
        str(tmp_path / "scan.bmp"): plan.NOT_INCLUDED,
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--server", "127.0.0.1:8000"],
        ["--format", "bmp"],
        ["-o", "qualty=5"],
        ["--overwrite", "sometimes"],
        ["--max-size", "lots"],
    ],
)
def test_bad_flags_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(cli.UsageError):
        cli.parser().parse_args(["compress", "x.jpg", *args])


def test_bad_option_values_are_caught_before_upload() -> None:
    parsed = cli.parser().parse_args(["compress", "x.jpg", "-o", "quality=101"])
    with pytest.raises(cli.BadOption):
        cli.server_options(parsed)
