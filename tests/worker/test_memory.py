"""The memory budget of a job (IMGPRESS_WORKER_MEMORY_MB), in processes of their own (RLIMIT_AS
would cap pytest itself): counted from what the worker holds, and `too_large` when it runs out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests import images


def run(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_budget_counts_from_what_the_worker_already_holds() -> None:
    # A worker that has grown by 1.5 GiB (libraries, kept buffers) still gets its whole budget.
    out = run(
        """
import mmap
import numpy as np
from worker import memory
held = mmap.mmap(-1, 1536 * 1024 * 1024)
with memory.capped(300):
    room = np.ones(200 * 1024 * 1024, dtype=np.uint8)
    del room
    try:
        np.ones(400 * 1024 * 1024, dtype=np.uint8)
        print("no cap")
    except MemoryError:
        print("capped")
"""
    )
    assert out == "capped"


@pytest.mark.heavy
def test_a_valid_image_short_of_memory_is_too_large_never_corrupt(tmp_path: Path) -> None:
    # The same valid photo under budgets from far too small to enough, one after the other in
    # one worker process (set up as a worker is): each job either finishes or says the image
    # needs more memory; none calls the file corrupt, and a job that ran out of memory leaves
    # the process able to run the next.
    photo = Image.blend(images.photo(2000, 1500), Image.effect_noise((2000, 1500), 40).convert("RGB"), 0.1)
    source = tmp_path / "photo.jpg"
    source.write_bytes(images.encode(photo, "JPEG", quality=90))
    script = f"""
import json, shutil
from dataclasses import replace
from pathlib import Path
from shared import storage
from shared.errors import ImgpressError
from shared.options import Options
from shared.settings import Settings
from worker import tasks
tasks.settings()
outcomes = {{}}
for budget in (20, 40, 60, 120, 1024):
    folder = Path({str(tmp_path)!r}) / str(budget)
    config = replace(Settings.from_env({{}}), data_dir=folder, worker_memory_mb=budget)
    storage.ensure_dirs(config.data_dir)
    job_id = storage.new_job_id()
    storage.input_path(config.data_dir, job_id).parent.mkdir(parents=True)
    shutil.copy({str(source)!r}, storage.input_path(config.data_dir, job_id))
    try:
        tasks.compress_capped(config, job_id, Options.parse({{"format": "auto"}}))
        outcomes[budget] = "finished"
    except ImgpressError as exc:
        outcomes[budget] = exc.code
print(json.dumps(outcomes))
"""
    outcomes = json.loads(run(script))
    assert "corrupt_image" not in outcomes.values(), outcomes
    assert outcomes["20"] == "too_large" and outcomes["1024"] == "finished", outcomes
