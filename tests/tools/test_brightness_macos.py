"""The macOS DisplayServices path, with fake frameworks behind ctypes' calling surface."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from voicedesk.tools.brightness import NoControllableDisplay, brightness_tool
from voicedesk.tools.brightness_macos import (
    CORE_GRAPHICS,
    DISPLAY_SERVICES,
    NO_BUILTIN,
    DisplayServicesBrightness,
)
from voicedesk.tools.flash import brightness_pulse
from voicedesk.tools.registry import ToolError, ToolOutcome


class FakeMac:
    """DisplayServices and CoreGraphics as ctypes hands them to us: arrays and byref()s."""

    def __init__(self, displays: dict[int, bool], level: float = 0.6, refuse_set: bool = False):
        self.displays = displays  # id -> built in?
        self.levels = dict.fromkeys(displays, level)
        self.refuse_set = refuse_set
        self.loaded: list[str] = []
        self.list_error = 0

    def load(self, path: str) -> Any:
        self.loaded.append(path)
        return self

    # ctypes sets argtypes/restype on the function objects; plain functions accept that.
    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)

    @property
    def CGGetActiveDisplayList(self) -> Any:
        mac = self

        def call(max_displays: int, array: Any, count_ref: Any) -> int:
            if mac.list_error:
                return mac.list_error
            ids = list(mac.displays)[:max_displays]
            for i, display in enumerate(ids):
                array[i] = display
            count_ref._obj.value = len(ids)
            return 0

        return _settable(call)

    @property
    def CGDisplayIsBuiltin(self) -> Any:
        return _settable(lambda display: self.displays[display])

    @property
    def DisplayServicesGetBrightness(self) -> Any:
        def call(display: int, value_ref: Any) -> int:
            if not self.displays.get(display):
                return 1  # kDisplayServicesError-ish: not a built-in panel
            value_ref._obj.value = self.levels[display]
            return 0

        return _settable(call)

    @property
    def DisplayServicesSetBrightness(self) -> Any:
        def call(display: int, value: ctypes.c_float) -> int:
            if self.refuse_set:
                return 7
            self.levels[display] = value.value
            return 0

        return _settable(call)


class _settable:
    """A callable that takes ctypes' argtypes/restype attributes."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def test_loads_both_frameworks() -> None:
    mac = FakeMac({1: True})
    DisplayServicesBrightness(load=mac.load)
    assert mac.loaded == [DISPLAY_SERVICES, CORE_GRAPHICS]


def test_sets_every_built_in_display_and_reports_the_level() -> None:
    mac = FakeMac({1: True, 5: False, 9: True}, level=0.6)
    backend = DisplayServicesBrightness(load=mac.load)
    assert backend.builtin_displays() == [1, 9]
    assert backend.get() == pytest.approx(0.6)
    outcome = brightness_tool(backend).handler({"brightness": 0.25})
    assert isinstance(outcome, ToolOutcome)
    assert outcome.value == "0.25"
    assert mac.levels[1] == pytest.approx(0.25)
    assert mac.levels[9] == pytest.approx(0.25)
    assert mac.levels[5] == pytest.approx(0.6)  # the external monitor is left alone


def test_a_mac_with_only_external_monitors() -> None:
    backend = DisplayServicesBrightness(load=FakeMac({3: False}).load)
    with pytest.raises(NoControllableDisplay) as caught:
        backend.set(0.5)
    assert str(caught.value) == NO_BUILTIN
    with pytest.raises(NoControllableDisplay):
        backend.get()


def test_the_display_list_failing() -> None:
    mac = FakeMac({1: True})
    mac.list_error = 1001
    with pytest.raises(NoControllableDisplay):
        DisplayServicesBrightness(load=mac.load).get()


def test_macos_refusing_the_change() -> None:
    backend = DisplayServicesBrightness(load=FakeMac({1: True}, refuse_set=True).load)
    with pytest.raises(ToolError, match="macOS refused"):
        backend.set(0.5)


def test_a_flash_pulse_restores_the_mac_brightness() -> None:
    mac = FakeMac({1: True}, level=0.4)
    assert brightness_pulse(DisplayServicesBrightness(load=mac.load), duration_ms=1)
    assert mac.levels[1] == pytest.approx(0.4)


def test_off_a_mac_the_frameworks_do_not_load() -> None:
    import sys

    if sys.platform == "darwin":  # pragma: no cover
        pytest.skip("on a Mac they do")
    with pytest.raises(OSError):  # noqa: PT011 - ctypes words it per OS
        DisplayServicesBrightness()
