"""The `imgpress` command run as a real process, as a user runs it, for the tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

IMGPRESS = str(Path(sys.executable).parent / "imgpress")


def imgpress(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the command with these arguments (and this standard input); it must end within 2 min."""
    return subprocess.run([IMGPRESS, *args], input=stdin, capture_output=True, timeout=120)


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    """Run the CLI with --json: its exit code and its one document."""
    done = imgpress(*args, "--json")
    assert b"Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A --json document's entries by their input's file name."""
    return {Path(entry["input"]).name: entry for entry in document["files"]}
