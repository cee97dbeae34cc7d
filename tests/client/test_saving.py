"""Saving an output: the name read from Content-Disposition, and never replacing a file unasked."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from imgpress import Download
from imgpress.answers import download_from
from imgpress.saving import disposition_filename

LONG_NAME = "a very long holiday photo name " * 6 + "café.jpg"


def test_filename_star_wins_over_the_ascii_fallback_in_either_order() -> None:
    encoded = quote("café crème.jpg", safe="")
    assert disposition_filename(f"attachment; filename=\"cafe creme.jpg\"; filename*=UTF-8''{encoded}") == (
        "café crème.jpg"
    )
    assert disposition_filename(f"attachment; filename*=utf-8''{encoded}; filename=\"cafe creme.jpg\"") == (
        "café crème.jpg"
    )
    assert disposition_filename(f"attachment; filename*=UTF-8''{quote(LONG_NAME, safe='')}") == LONG_NAME
    assert len(LONG_NAME) > 190
    assert disposition_filename("attachment; filename*=ISO-8859-1'fr'caf%E9.jpg") == "café.jpg"


def test_the_fallback_is_used_when_filename_star_cannot_be_read() -> None:
    fallback = 'attachment; filename="cafe.jpg"'
    assert disposition_filename(f"{fallback}; filename*=UTF-8''caf%E9.jpg") == "cafe.jpg"  # not UTF-8
    assert disposition_filename(f"{fallback}; filename*=KOI8-R''x.jpg") == "cafe.jpg"
    assert disposition_filename('attachment; filename="say \\"cheese\\"; now.png"') == 'say "cheese"; now.png'
    assert disposition_filename("attachment; filename=plain.webp") == "plain.webp"
    assert disposition_filename("attachment") == disposition_filename("") == ""


def test_a_suggested_name_never_leads_out_of_the_folder() -> None:
    assert disposition_filename("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd") == "passwd"
    assert disposition_filename('attachment; filename="..\\\\evil.jpg"') == "evil.jpg"
    assert disposition_filename('attachment; filename=".."') == ""
    assert disposition_filename("attachment; filename*=UTF-8''a%0Ab.jpg") == "ab.jpg"


def test_a_downloaded_result_has_the_unicode_name() -> None:
    header = f"attachment; filename=\"cafe creme.jpg\"; filename*=UTF-8''{quote('café crème.jpg', safe='')}"
    response = httpx.Response(200, content=b"jpeg", headers={"Content-Disposition": header})
    assert download_from(response) == Download(b"jpeg", "café crème.jpg")


def test_save_never_replaces_a_file_unless_asked(tmp_path: Path) -> None:
    original = tmp_path / "photo.jpg"
    original.write_bytes(b"the original photo")
    output = Download(b"compressed", "photo.jpg")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        output.save(tmp_path)
    with pytest.raises(FileExistsError):
        output.save(original)
    assert original.read_bytes() == b"the original photo"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["photo.jpg"]
    assert output.save(original, overwrite=True) == original and original.read_bytes() == b"compressed"


def test_save_writes_into_a_folder_or_to_a_path_with_the_umasks_mode(tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    previous = os.umask(0o027)
    try:
        written = Download(b"compressed", "../photo.jpg").save(folder)
    finally:
        os.umask(previous)
    assert written == folder / "photo.jpg" and written.read_bytes() == b"compressed"
    assert stat.S_IMODE(written.stat().st_mode) == 0o640
    assert Download(b"other", "photo.jpg").save(folder / "renamed.jpg") == folder / "renamed.jpg"
    with pytest.raises(ValueError, match="no file name"):
        Download(b"x", "").save(folder)
    with pytest.raises(FileNotFoundError):
        Download(b"x", "photo.jpg").save(tmp_path / "missing" / "photo.jpg")
    assert sorted(path.name for path in folder.iterdir()) == ["photo.jpg", "renamed.jpg"]
    made = Download(b"made", "photo.jpg").save(f"{tmp_path}/new/folder/")
    assert made == tmp_path / "new" / "folder" / "photo.jpg" and made.read_bytes() == b"made"
