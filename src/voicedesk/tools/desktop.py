"""The tools voicedesk offers an agent on a desktop, wired to this computer."""

from __future__ import annotations

import json
import sys

from voicedesk.tools.battery import BatteryReader, battery_tool
from voicedesk.tools.brightness import BrightnessBackend, brightness_tool, default_backend
from voicedesk.tools.flash import FlashRateLimit, FlashSurface, TerminalFlash, flash_tool
from voicedesk.tools.registry import ToolRegistry


def desktop_tools(
    flash_surface: FlashSurface | None = None,
    *,
    battery: BatteryReader | None = None,
    brightness: BrightnessBackend | None = None,
    flash_limit: FlashRateLimit | None = None,
) -> ToolRegistry:
    """``getBatteryLevel``, ``changeBrightness`` and ``flashScreen``.

    ``flash_surface``: the window's overlay (ui injects it); the terminal's visual bell
    when ``None``.
    """
    backend = brightness if brightness is not None else default_backend(sys.platform)
    return ToolRegistry(
        [
            battery_tool(battery),
            brightness_tool(backend),
            flash_tool(flash_surface or TerminalFlash(), backend, flash_limit),
        ]
    )


def import_backends(platform: str = sys.platform) -> None:
    """Import the OS libraries the tools use (screen-brightness-control takes ~25 ms),
    e.g. from a worker thread before the first conversation builds its tools."""
    if platform == "darwin":
        import voicedesk.tools.brightness_macos  # noqa: F401
    else:
        import screen_brightness_control  # noqa: F401


def definitions_json() -> str:
    """The three tool definitions as ``voicedesk tools`` prints them."""
    from voicedesk.tools.battery import DEFINITION as BATTERY
    from voicedesk.tools.brightness import DEFINITION as BRIGHTNESS
    from voicedesk.tools.flash import DEFINITION as FLASH

    return json.dumps([d.as_json() for d in (BATTERY, BRIGHTNESS, FLASH)], indent=2)
