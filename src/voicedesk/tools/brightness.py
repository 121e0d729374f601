"""``changeBrightness``: set the screen brightness (parameter ``brightness``, 0..1).

Windows and Linux go through screen-brightness-control (0..100; laptop backlights
via WMI or sysfs, external monitors via DDC/CI, which can take seconds). macOS,
where that package does not work, goes through the DisplayServices framework
(:mod:`voicedesk.tools.brightness_macos`). Calls block: the session runs this
tool in a worker thread, inside its timeout.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from voicedesk.tools.registry import (
    ClientTool,
    ToolDefinition,
    ToolError,
    ToolOutcome,
    format_fraction,
)

logger = logging.getLogger(__name__)

NO_DISPLAY = (
    "I can't change the brightness here: no screen on this computer lets software control "
    "its brightness."
)
NO_PERMISSION = (
    "I'm not allowed to change the screen brightness on this computer; voicedesk's log "
    "says how to grant access."
)
LINUX_ACCESS_HINT = (
    "To let voicedesk change the brightness on Linux: for a laptop backlight, add yourself "
    "to the 'video' group (sudo usermod -aG video $USER, then log in again) or install a udev "
    "rule making /sys/class/backlight/*/brightness writable; for external monitors, load "
    "i2c-dev (sudo modprobe i2c-dev) and give your user access to /dev/i2c-* (ddcutil's udev "
    "rules do this)."
)

DEFINITION = ToolDefinition(
    name="changeBrightness",
    description="Changes the brightness of the device screen.",
    parameters={
        "type": "object",
        "properties": {
            "brightness": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": (
                    "A number between 0 and 1, inclusive, representing the desired screen "
                    "brightness."
                ),
            }
        },
        "required": ["brightness"],
    },
)


class NoControllableDisplay(ToolError):
    """No display here lets software set its brightness."""


class BrightnessPermissionError(ToolError):
    """A display exists but the OS does not let this user change it."""


class BrightnessBackend(Protocol):
    """Blocking access to the screen brightness, 0..1 (may take seconds for DDC/CI)."""

    def get(self) -> float:
        """The brightness now. Raise :class:`NoControllableDisplay` if there is none."""

    def set(self, level: float) -> float:
        """Set every controllable display to ``level``; return what was actually set."""


def parse_brightness(value: Any) -> float:
    """The ``brightness`` parameter as a float in 0..1; :class:`ToolError` says what is valid.

    Numbers and numeric strings are accepted; booleans, NaN, infinities and anything
    outside 0..1 are not.
    """
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or not 0.0 <= number <= 1.0:
        shown = repr(value)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        raise ToolError(
            f"brightness must be a number from 0 to 1 (for example 0.3 for 30 %); got {shown}."
        )
    return number


class ScreenBrightnessControl:
    """Windows and Linux, through the screen-brightness-control package.

    Finding out that no display is controllable means probing every method (sysfs,
    i2c, ddcutil), which takes about a second on Linux; that answer is kept for
    ``recheck_s`` so a second call (a flash right after) does not pay it again.
    """

    def __init__(
        self,
        module: Any = None,
        platform: str = sys.platform,
        recheck_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if module is None:
            import screen_brightness_control

            module = screen_brightness_control
        self._sbc = module
        self._platform = platform
        self._hint_logged = False
        self._recheck_s = recheck_s
        self._clock = clock
        self._none_until = -math.inf

    def _errors(self, exc: Exception) -> ToolError:
        no_display = getattr(self._sbc, "exceptions", None)
        no_display_type = getattr(no_display, "NoValidDisplayError", LookupError)
        if isinstance(exc, PermissionError):
            self._log_hint()
            return BrightnessPermissionError(NO_PERMISSION)
        if isinstance(exc, no_display_type):
            self._log_hint()
            self._none_until = self._clock() + self._recheck_s
            return NoControllableDisplay(NO_DISPLAY)
        logger.warning("brightness control failed: %s: %s", type(exc).__name__, exc)
        return ToolError(f"changing the brightness failed ({type(exc).__name__}).")

    def _log_hint(self) -> None:
        if self._platform.startswith("linux") and not self._hint_logged:
            self._hint_logged = True
            logger.warning("no controllable display. %s", LINUX_ACCESS_HINT)

    @staticmethod
    def _first(values: Any) -> float:
        levels = [v for v in (values or []) if isinstance(v, int | float)]
        if not levels:
            raise NoControllableDisplay(NO_DISPLAY)
        return min(1.0, max(0.0, float(levels[0]) / 100.0))

    def _check_known_absent(self) -> None:
        if self._clock() < self._none_until:
            raise NoControllableDisplay(NO_DISPLAY)

    def get(self) -> float:
        self._check_known_absent()
        try:
            return self._first(self._sbc.get_brightness())
        except ToolError:
            raise
        except Exception as exc:
            raise self._errors(exc) from None

    def set(self, level: float) -> float:
        self._check_known_absent()
        try:
            return self._first(self._sbc.set_brightness(round(level * 100), no_return=False))
        except ToolError:
            raise
        except Exception as exc:
            raise self._errors(exc) from None


class Unavailable:
    """A backend for where nothing can be controlled (or it failed to load)."""

    def __init__(self, message: str = NO_DISPLAY) -> None:
        self._message = message

    def get(self) -> float:
        raise NoControllableDisplay(self._message)

    def set(self, level: float) -> float:
        raise NoControllableDisplay(self._message)


def default_backend(platform: str = sys.platform) -> BrightnessBackend:
    """The backend for this OS."""
    if platform == "darwin":
        from voicedesk.tools.brightness_macos import DisplayServicesBrightness

        try:
            return DisplayServicesBrightness()
        except OSError as exc:
            logger.warning("DisplayServices is not available: %s", exc)
            return Unavailable()
    try:
        return ScreenBrightnessControl(platform=platform)
    except ImportError as exc:  # pragma: no cover - a broken install
        logger.warning("screen-brightness-control is not available: %s", exc)
        return Unavailable()


def format_percent(level: float) -> str:
    return f"{round(level * 100)} %"


def brightness_tool(backend: BrightnessBackend) -> ClientTool:
    def change_brightness(parameters: Mapping[str, Any]) -> ToolOutcome:
        if "brightness" not in parameters:
            raise ToolError("the brightness parameter is missing: give a number from 0 to 1.")
        level = parse_brightness(parameters["brightness"])
        actual = backend.set(level)
        return ToolOutcome(format_fraction(actual), f"brightness set to {format_percent(actual)}")

    return ClientTool(DEFINITION, change_brightness)
