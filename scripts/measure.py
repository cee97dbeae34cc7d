"""Small measuring helpers the benchmark scripts share: latency percentiles, who listens on a port,
the report printed at the end."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path


def latency_summary(values_ms: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of latencies in milliseconds (zeros when there are none)."""
    if not values_ms:
        return {"latency_ms_p50": 0.0, "latency_ms_p95": 0.0, "latency_ms_p99": 0.0}
    ordered = sorted(values_ms)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)

    return {
        "latency_ms_p50": round(statistics.median(ordered), 1),
        "latency_ms_p95": at(0.95),
        "latency_ms_p99": at(0.99),
    }


def listening_pid(port: int) -> int | None:
    """The process that listens on a TCP port of this machine."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(entry.name)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return None


def print_report(report: dict[str, object]) -> None:
    """One line per figure on stderr for people, then the whole report as one JSON line on stdout."""
    for key, value in report.items():
        print(f"{key:>26}: {value}", file=sys.stderr)
    print(json.dumps(report))
