"""`python -m api`: serve the API on IMGPRESS_HOST:IMGPRESS_PORT under its HTTP limits."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


# Until uvicorn installs its own handlers, a stop exits at once, without a traceback.
signal.signal(signal.SIGINT, _exit_quietly)
signal.signal(signal.SIGTERM, _exit_quietly)


from api import server
from shared.settings import from_environment_or_exit


def main() -> int:
    """Read the settings (failing with a clear message) and serve until stopped."""
    settings = from_environment_or_exit()
    server.serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
