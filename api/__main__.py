"""`python -m api`: serve the API on IMGPRESS_HOST:IMGPRESS_PORT under its HTTP limits."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    os._exit(0)


# Until uvicorn installs its own handlers, a stop exits at once, without a traceback.
signal.signal(signal.SIGINT, _exit_quietly)
signal.signal(signal.SIGTERM, _exit_quietly)


from api import server
from shared.settings import from_environment_or_exit


def main(argv: list[str] | None = None) -> int:
    """Read the settings (failing with a clear message) and serve until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m api",
        description="Serve the imgpress API. Every setting comes from an IMGPRESS_* variable "
        "(docs/settings.md), e.g. IMGPRESS_HOST and IMGPRESS_PORT.",
    )
    parser.parse_args(argv)
    settings = from_environment_or_exit()
    server.serve(settings)
    return 0


if __name__ == "__main__":
    try:
        status = main()
    finally:
        # Served and shut down: a stop signal while the interpreter winds down (its threads
        # joined) ends the process at once, with no traceback from inside that wait.
        signal.signal(signal.SIGINT, _exit_now)
        signal.signal(signal.SIGTERM, _exit_now)
    sys.exit(status)
