"""voicedesk: a desktop client for ElevenLabs voice agents."""

# Read by the build (pyproject's dynamic version) and by PyInstaller's spec; a constant
# here keeps importlib.metadata (~90 ms) off the start-up path.
__version__ = "0.1.0"

APP_NAME = "voicedesk"

__all__ = ["APP_NAME", "__version__"]
