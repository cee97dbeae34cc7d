"""`python -m api`: serve the API with uvicorn on IMGPRESS_HOST:IMGPRESS_PORT."""

from __future__ import annotations

import os
import sys

import uvicorn

from api.app import create_app
from shared.settings import Settings, SettingsError


def main() -> int:
    """Read the settings (failing with a clear message) and serve until stopped."""
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"imgpress: {exc}", file=sys.stderr)
        return 2
    # Every request is logged once, as JSON, by api.observability: uvicorn's access log would
    # only repeat it (and cost a second log line per request).
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level="info", access_log=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
