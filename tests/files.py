"""What a test finds in a data directory."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings


def leftover_files(settings: Settings) -> list[Path]:
    """Every file left in the data directory (none may be, after a refused upload)."""
    return [p for p in settings.data_dir.rglob("*") if p.is_file()]
