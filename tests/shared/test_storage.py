"""Storage paths come from job ids only; deletes are idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import storage


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 32, "0" * 31, "", "0" * 32 + "/x"])
def test_only_job_ids_become_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        storage.job_dir(tmp_path, bad)


def test_ids_are_random_and_valid() -> None:
    ids = {storage.new_job_id() for _ in range(100)}
    assert len(ids) == 100 and all(storage.is_job_id(i) for i in ids)


def test_move_into_place_and_delete_twice(tmp_path: Path) -> None:
    storage.ensure_dirs(tmp_path)
    job_id = storage.new_job_id()
    temp = storage.temp_path(tmp_path)
    temp.write_bytes(b"x")
    storage.move_into_place(temp, storage.input_path(tmp_path, job_id))
    assert storage.input_path(tmp_path, job_id).read_bytes() == b"x" and not temp.exists()
    storage.delete_job_files(tmp_path, job_id)
    storage.delete_job_files(tmp_path, job_id)
    storage.delete_input(tmp_path, job_id)
    assert not storage.job_dir(tmp_path, job_id).exists()
