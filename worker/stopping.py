"""How imgpress's worker processes meet stop signals: before they are ready for them, in helper
threads, and at their parent's death. Light on imports: `python -m worker` loads it first."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


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


@contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block: they are delivered when it ends. Threads started
    inside never take them (the kernel then delivers them to the main thread, which would
    otherwise stay blocked in a socket read), and a pool's stop waits until a worker it is
    starting is known."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def hold_stop_signals() -> None:
    """Keep SIGINT and SIGTERM pending (for this thread and the threads it starts) until
    `release_stop_signals`: a worker takes them once its stop handlers are in place."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_stop_signals() -> None:
    """Deliver the stop signals held since `hold_stop_signals`, and those that come later."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
