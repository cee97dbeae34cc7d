"""How imgpress's worker processes meet a stop signal before they are ready for it, and their
parent's death. Light on imports: `python -m worker` installs it before loading the rest."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from types import FrameType

_PR_SET_PDEATHSIG = 1


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    """A stop signal that arrives before a process has its own handlers: exit, no traceback."""
    raise SystemExit(0)


def stop_quietly_until_ready() -> None:
    """Until RQ or uvicorn installs its handlers, SIGINT and SIGTERM exit at once and cleanly."""
    signal.signal(signal.SIGINT, _exit_quietly)
    signal.signal(signal.SIGTERM, _exit_quietly)


def die_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM (a warm stop) to this process when its parent dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above took effect
        raise SystemExit(0)
