"""Small measuring helpers the benchmark scripts share: latency percentiles, who listens on a port,
the CPU of process trees from /proc, the report printed at the end."""

from __future__ import annotations

import json
import os
import statistics
import sys
from dataclasses import dataclass
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


TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Usage:
    cpu_seconds: float
    #: The part of cpu_seconds spent in the kernel (system calls, page faults).
    system_seconds: float
    peak_rss_mib: float


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and every live process below it."""
    found, stack = [pid], [pid]
    while stack:
        for child in _children(stack.pop()):
            found.append(child)
            stack.append(child)
    return found


def usage(pids: list[int]) -> Usage:
    """CPU (own + reaped children) and summed peak RSS of these process trees."""
    cpu = system = 0.0
    rss_kib = 0
    for root in pids:
        for pid in tree(root):
            try:
                fields = _stat(pid)
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            # utime, stime (own) and cutime, cstime (reaped children, e.g. RQ's work-horses):
            # fields 14-17 of /proc/pid/stat. Live descendants count their own time only.
            user, kernel = int(fields[11]), int(fields[12])
            if pid == root:
                user, kernel = user + int(fields[13]), kernel + int(fields[14])
            cpu += (user + kernel) / TICKS
            system += kernel / TICKS
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    rss_kib += int(line.split()[1])
    return Usage(cpu, system, rss_kib / 1024)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def _environment(pid: int) -> str | None:
    """The process's IMGPRESS_REDIS_URL, if it can be read."""
    try:
        variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return None
    for variable in variables:
        if variable.startswith(b"IMGPRESS_REDIS_URL="):
            return variable.split(b"=", 1)[1].decode(errors="replace")
    return None


def worker_pids(redis_url: str) -> list[int]:
    """Top-level compression workers using this Redis: `rq worker ... --url URL`, or imgpress's
    `python -m worker` (scripts/run) with the URL in its environment; webhook workers are left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            line = _cmdline(int(entry.name))
            if ("rq worker" in line or "rqworker" in line or "rq worker-pool" in line) and redis_url in line:
                found.append(int(entry.name))
            elif line.strip().endswith("-m worker") and _environment(int(entry.name)) == redis_url:
                found.append(int(entry.name))
    # Keep roots only: the pool's or worker's own children are counted through their parent.
    return [pid for pid in found if int(_stat(pid)[1]) not in found]
