"""Built-in display brightness on macOS, through the DisplayServices framework (ctypes).

screen-brightness-control does not support macOS. DisplayServices is a private
framework, but it is what the Control Centre slider itself uses, on Intel and Apple
silicon alike. External monitors are not covered (they need DDC over IOKit).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from voicedesk.tools.brightness import NO_DISPLAY, NoControllableDisplay
from voicedesk.tools.registry import ToolError

DISPLAY_SERVICES = "/System/Library/PrivateFrameworks/DisplayServices.framework/DisplayServices"
CORE_GRAPHICS = "/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics"
MAX_DISPLAYS = 16
NO_BUILTIN = (
    "I can't change the brightness here: this Mac has no built-in display, and voicedesk "
    "cannot control external monitors on macOS."
)


class DisplayServicesBrightness:
    """``get``/``set`` the built-in displays' brightness. ``load`` is ``ctypes.CDLL`` (tests
    pass a fake); raises ``OSError`` when the frameworks cannot be loaded."""

    def __init__(self, load: Callable[[str], Any] = ctypes.CDLL) -> None:
        self._ds = load(DISPLAY_SERVICES)
        self._cg = load(CORE_GRAPHICS)
        self._ds.DisplayServicesGetBrightness.argtypes = [
            ctypes.c_uint32,
            ctypes.POINTER(ctypes.c_float),
        ]
        self._ds.DisplayServicesGetBrightness.restype = ctypes.c_int
        self._ds.DisplayServicesSetBrightness.argtypes = [ctypes.c_uint32, ctypes.c_float]
        self._ds.DisplayServicesSetBrightness.restype = ctypes.c_int
        self._cg.CGGetActiveDisplayList.argtypes = [
            ctypes.c_uint32,
            ctypes.POINTER(ctypes.c_uint32),
            ctypes.POINTER(ctypes.c_uint32),
        ]
        self._cg.CGGetActiveDisplayList.restype = ctypes.c_int32
        self._cg.CGDisplayIsBuiltin.argtypes = [ctypes.c_uint32]
        self._cg.CGDisplayIsBuiltin.restype = ctypes.c_bool

    def builtin_displays(self) -> list[int]:
        displays = (ctypes.c_uint32 * MAX_DISPLAYS)()
        count = ctypes.c_uint32(0)
        if self._cg.CGGetActiveDisplayList(MAX_DISPLAYS, displays, ctypes.byref(count)) != 0:
            raise NoControllableDisplay(NO_DISPLAY)
        return [int(d) for d in displays[: count.value] if self._cg.CGDisplayIsBuiltin(d)]

    def _display(self) -> int:
        builtin = self.builtin_displays()
        if not builtin:
            raise NoControllableDisplay(NO_BUILTIN)
        return builtin[0]

    def _read(self, display: int) -> float:
        value = ctypes.c_float(0.0)
        if self._ds.DisplayServicesGetBrightness(display, ctypes.byref(value)) != 0:
            raise NoControllableDisplay(NO_DISPLAY)
        return min(1.0, max(0.0, float(value.value)))

    def get(self) -> float:
        return self._read(self._display())

    def set(self, level: float) -> float:
        builtin = self.builtin_displays()
        if not builtin:
            raise NoControllableDisplay(NO_BUILTIN)
        for display in builtin:
            if self._ds.DisplayServicesSetBrightness(display, ctypes.c_float(level)) != 0:
                raise ToolError("macOS refused to change the brightness of the built-in display.")
        return self._read(builtin[0])
