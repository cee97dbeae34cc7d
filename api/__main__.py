"""`python -m api`: serve the API on IMGPRESS_HOST:IMGPRESS_PORT under its HTTP limits."""

from __future__ import annotations

import os
import sys

from api import server
from shared.settings import Settings, SettingsError


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
