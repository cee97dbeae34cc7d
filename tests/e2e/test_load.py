"""A small run of scripts/bench_load.py against the real processes: nothing lost, no 5xx, nothing left."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import bench_load
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]


@pytest.fixture
def stack(redis_databases: DatabasePool, tmp_path: Path) -> Iterator[Stack]:
    # max_queued is small, so back-pressure (503) is exercised too.
    overrides = {"retention_seconds": 2, "sweep_interval_seconds": 1, "max_queued": 20}
    for running in running_stack(redis_databases, tmp_path, **overrides):
        running.start_worker("worker-2")
        yield running


def test_load_loses_nothing_and_leaves_nothing(stack: Stack) -> None:
    report, done = bench_load(
        "--url", stack.url,
        "--count", "150",
        "--concurrency", "32",
        "--max-seconds", "120",
        "--data-dir", str(stack.settings.data_dir),
        "--redis-url", stack.settings.redis_url,
        "--settle", "6",
        timeout=200,
    )  # fmt: skip
    assert report["accepted"] > 0
    assert report["accepted"] + report["refused_503"] == 150
    assert report["lost"] == 0, report["lost_last_seen"]
    assert report["server_errors_5xx"] == 0 and report["transport_errors"] == 0
    assert report["files_left"] == 0 and report["redis_keys_left"] == 0
    assert done.returncode == 0, done.stderr
