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

import os  # noqa: E402 - after the handlers above: a stop while these load must exit cleanly

from api import server  # noqa: E402
from shared.settings import Settings, SettingsError  # noqa: E402


def main() -> int:
    """Read the settings (failing with a clear message) and serve until stopped."""
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"imgpress: {exc}", file=sys.stderr)
        return 2
    server.serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
