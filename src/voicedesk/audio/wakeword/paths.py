"""Where hotword files live: the user data folder (platformdirs), overridable for tests."""

from __future__ import annotations

from pathlib import Path

from voicedesk.config import DATA_DIR_ENV, data_dir

__all__ = ["DATA_DIR_ENV", "data_dir", "hotwords_dir"]


def hotwords_dir() -> Path:
    """Where trained hotwords are saved: ``<user data>/hotwords/NAME.json``."""
    return data_dir() / "hotwords"
