"""Where hotword files live: the user data folder (platformdirs), overridable for tests."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "voicedesk"
#: Overrides the user data folder (tests, portable installs).
DATA_DIR_ENV = "VOICEDESK_DATA_DIR"


def data_dir() -> Path:
    """``platformdirs.user_data_path("voicedesk")`` unless ``VOICEDESK_DATA_DIR`` is set."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def hotwords_dir() -> Path:
    """Where trained hotwords are saved: ``<user data>/hotwords/NAME.json``."""
    return data_dir() / "hotwords"
