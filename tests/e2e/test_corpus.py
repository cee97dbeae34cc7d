"""Every file of ../shared/corpus (hostile and tricky) through the real API and a real worker:
each gets the class its MANIFEST.tsv row expects, never a 5xx, nothing left behind."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageOps

from shared import storage
from tests.images import CORPUS
from tests.processes import descendants
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

MANIFEST = CORPUS / "MANIFEST.tsv"
ROWS = list(csv.DictReader(MANIFEST.read_text().splitlines(), delimiter="\t")) if MANIFEST.exists() else []
NO_CORPUS = "../shared/corpus is not beside the repository; the corpus cases need it"
#: What an error body must never show.
LEAKS = re.compile(r"Traceback|File \"|/tmp/|/work/|site-packages|PIL\.|Pillow|cannot identify|\.py\b")


@dataclass
class Outcome:
    """What the service did with one file: the final status code and body (upload or result)."""

    upload_status: int
    status: int
    body: bytes
    content_type: str
    job_id: str | None


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not ROWS:
        pytest.skip(NO_CORPUS)
    # Stock limits, except a job timeout that keeps a hang visible within the test's budget.
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("corpus"), job_timeout_seconds=30)


def compress(http: httpx.Client, path: Path) -> Outcome:
    """Upload, wait for the end, fetch the result."""
    response = http.post(
        "/v1/jobs",
        content=path.read_bytes(),
        params={"filename": path.name},
        headers={"content-type": "application/octet-stream"},
    )
    if response.status_code != 202:
        return Outcome(response.status_code, response.status_code, response.content, "", None)
    job_id = response.json()["id"]
    job = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert job["status"] in ("finished", "failed"), f"job still {job['status']} after 30 s"
    result = http.get(f"/v1/jobs/{job_id}/result")
    return Outcome(202, result.status_code, result.content, result.headers.get("content-type", ""), job_id)


def check_error_body(body: bytes) -> None:
    error = httpx.Response(400, content=body).json()["error"]
    assert set(error) == {"code", "message"}
    assert len(error["message"]) < 200
    assert not LEAKS.search(error["message"]), error["message"]


def check_output(row: dict[str, str], outcome: Outcome, source: Path) -> None:
    """The output decodes as the advertised type and has the property the manifest states."""
    with Image.open(io.BytesIO(outcome.body)) as output:
        output.load()
        assert Image.MIME[output.format or ""] == outcome.content_type
        category = row["category"]
        if category == "orientation":
            with Image.open(source) as original:
                upright = ImageOps.exif_transpose(original)
            assert output.size == upright.size
            assert output.getexif().get(0x0112, 1) == 1
        if category.startswith("payload"):
            for needle in (b"<?php", b"passwd", b"tEXt"):
                assert needle not in outcome.body or needle in _pixels_only(source)
        if category == "16bit":
            extrema = output.convert("RGBA").convert("RGB").getextrema()
            assert any(high - low > 1 for low, high in extrema), "clipped to black and white"
        if category == "palette-alpha" or "alpha" in row["expected_detail"].lower():
            assert output.mode in ("RGBA", "LA", "PA") or "transparency" in output.info
        if category == "cmyk":
            with Image.open(source) as original:
                reference = original.convert("RGB").resize((16, 16))
            mine = output.convert("RGBA").convert("RGB").resize((16, 16))
            difference = sum(abs(a - b) for a, b in zip(reference.tobytes(), mine.tobytes(), strict=True))
            assert difference / len(reference.tobytes()) < 12, "colours changed (inverted CMYK?)"


def remote_hosts(pid: int) -> set[str]:
    """Remote IPv4 addresses of the TCP sockets process `pid` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except (FileNotFoundError, PermissionError):
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    hosts = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            address = bytes.fromhex(fields[2].split(":")[0])[::-1]
            hosts.add(".".join(str(b) for b in address))
    return hosts


def _pixels_only(source: Path) -> bytes:
    """Bytes a lossless re-encode may legitimately keep (payload-in-pixels rows)."""
    return source.read_bytes() if "pixels" in source.name.lower() else b""


def children(pid: int) -> set[int]:
    """Direct children of a process: the pool's workers (RQ's scheduler runs below those)."""
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


@pytest.fixture(scope="module")
def first_workers(stack: Stack) -> set[int]:
    """The pool's worker processes before the first file."""
    found = children(stack.processes["worker"].pid)
    assert found, "the worker pool has no worker"
    return found


@pytest.mark.parametrize("row", ROWS, ids=[row["path"] for row in ROWS])
def test_corpus_file(stack: Stack, first_workers: set[int], row: dict[str, str]) -> None:
    source = CORPUS / row["path"]
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        outcome = compress(http, source)
        assert outcome.upload_status < 500 and outcome.status < 500
        if row["expected"] == "reject":
            assert 400 <= outcome.status < 500, f"expected a refusal, got {outcome.status}"
        elif row["expected"] == "accept":
            assert outcome.status == 200, f"expected an output, got {outcome.status}: {outcome.body[:200]!r}"
        if outcome.status == 200:
            check_output(row, outcome, source)
        else:
            check_error_body(outcome.body)
            if outcome.job_id is not None:
                # A refused job keeps its record (to explain the error) but no file.
                folder = storage.job_dir(stack.settings.data_dir, outcome.job_id)
                assert not folder.exists() or not any(folder.iterdir())
        assert list(storage.tmp_dir(stack.settings.data_dir).iterdir()) == []
        # The worker survived (the pool did not have to start a new one) and nothing else runs
        # below the pool: no Ghostscript, no shell.
        pool = stack.processes["worker"]
        assert pool.poll() is None
        assert children(pool.pid) == first_workers
        for pid in descendants(pool.pid):
            try:
                program = Path(f"/proc/{pid}/exe").resolve(strict=True).name
            except (FileNotFoundError, PermissionError):
                continue  # ended meanwhile
            assert program.startswith("python"), f"an unexpected child process: {program}"
        for pid in first_workers:
            # No connection anywhere but this machine (Redis): no payload made it fetch a URL.
            hosts = remote_hosts(pid)
            assert hosts and all(host.startswith("127.") for host in hosts), hosts
        assert http.get("/readyz").status_code == 200
