"""voicedesk: a desktop client for ElevenLabs voice agents."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voicedesk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

APP_NAME = "voicedesk"

__all__ = ["APP_NAME", "__version__"]
