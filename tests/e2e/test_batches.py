"""A batch's archive from a real API process, downloaded while the batch is deleted."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from shared.settings import Settings
from tests.ports import free_port
from tests.redis_servers import DatabasePool
from tests.stack import Stack

pytestmark = pytest.mark.e2e


def noise_jpeg(seed: int) -> bytes:
    """A photo-sized JPEG of noise: its output stays large, so an archive of a few is many megabytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_an_archive_being_downloaded_survives_the_batch_being_deleted(
    redis_databases: DatabasePool, tmp_path: Path
) -> None:
    with redis_databases.database() as url:
        settings = replace(Settings.from_env({}), redis_url=url, data_dir=tmp_path / "data", port=free_port())
        stack = Stack(settings, tmp_path)
        stack.start_api()
        try:
            stack.wait_ready_api()
            files = [("file", (f"{n}.jpg", noise_jpeg(n))) for n in range(8)]
            batch = httpx.post(
                f"{stack.url}/v1/batches", files=files, data={"quality": "90"}, timeout=60
            ).json()
            stack.run_worker_burst()
            with httpx.stream("GET", f"{stack.url}/v1/batches/{batch['id']}/archive", timeout=30) as response:
                assert response.status_code == 200
                chunks = response.iter_raw(65536)
                received = next(chunks)
                deleted = httpx.delete(f"{stack.url}/v1/batches/{batch['id']}", timeout=30)
                assert deleted.status_code == 204
                for chunk in chunks:
                    received += chunk
                declared = int(response.headers["content-length"])
        finally:
            stack.stop()
        log = (tmp_path / "api.log").read_text()
        assert "Traceback" not in log and '"level": "error"' not in log
        # Files open when the download began are sent whole: the archive is complete and valid.
        assert len(received) == declared
        with zipfile.ZipFile(io.BytesIO(received)) as archive:
            assert len(archive.namelist()) == 8
            assert archive.testzip() is None
