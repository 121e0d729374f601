"""changeBrightness: validation, the screen-brightness-control backend (real and faked)."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from types import SimpleNamespace
from typing import Any

import pytest
import screen_brightness_control as sbc
from hypothesis import given
from hypothesis import strategies as st

from voicedesk.tools.brightness import (
    LINUX_ACCESS_HINT,
    NO_DISPLAY,
    NO_PERMISSION,
    BrightnessPermissionError,
    NoControllableDisplay,
    ScreenBrightnessControl,
    Unavailable,
    brightness_tool,
    default_backend,
    parse_brightness,
)
from voicedesk.tools.registry import ToolError, ToolOutcome, stringify_result


class FakeSbc:
    """screen-brightness-control's surface: 0..100 lists, its exceptions module."""

    class NoValidDisplayError(LookupError):
        pass

    exceptions = SimpleNamespace(NoValidDisplayError=NoValidDisplayError)

    def __init__(
        self, levels: list[int] | None = None, fail: Exception | None = None, delay_s: float = 0
    ) -> None:
        self.levels = levels if levels is not None else [70]
        self.fail = fail
        self.delay_s = delay_s
        self.calls: list[int] = []

    def get_brightness(self) -> list[int]:
        if self.fail:
            raise self.fail
        return list(self.levels)

    def set_brightness(self, value: int, no_return: bool = True) -> list[int] | None:
        time.sleep(self.delay_s)
        if self.fail:
            raise self.fail
        self.calls.append(value)
        self.levels = [max(10, value) for _ in self.levels]  # some panels have a floor
        return None if no_return else list(self.levels)


def change(backend: Any, brightness: Any) -> ToolOutcome:
    outcome = brightness_tool(backend).handler({"brightness": brightness})
    assert isinstance(outcome, ToolOutcome)
    return outcome


# ------------------------------------------------------------------ the real path here


def test_the_real_backend_on_this_machine_says_there_is_no_screen_to_control(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CI has no backlight and no DDC monitor: the package's own error becomes our sentence."""
    try:
        present = sbc.list_monitors()
    except Exception:
        present = []
    if present:  # pragma: no cover - a machine with a controllable screen
        pytest.skip(f"this machine has controllable screens: {present}")
    backend = default_backend(sys.platform)
    caplog.set_level(logging.WARNING)
    with pytest.raises(NoControllableDisplay) as caught:
        change(backend, 0.3)
    assert str(caught.value) == NO_DISPLAY
    if sys.platform.startswith("linux"):
        assert "video" in caplog.text
        assert "i2c-dev" in caplog.text


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("given_value", "level"),
    [(0, 0.0), (1, 1.0), (0.3, 0.3), ("0.45", 0.45), (" 1 ", 1.0), ("1e-1", 0.1), (0.0, 0.0)],
)
def test_numbers_and_numeric_strings_are_accepted(given_value: Any, level: float) -> None:
    assert parse_brightness(given_value) == level


@pytest.mark.parametrize(
    "bad",
    [
        -0.1,
        1.5,
        30,
        "30%",
        "bright",
        "",
        None,
        True,
        False,
        math.nan,
        math.inf,
        [0.5],
        {"v": 1},
        "nan",
        "inf",
        10**400,
    ],
)
def test_anything_else_says_what_is_valid(bad: Any) -> None:
    with pytest.raises(ToolError, match="must be a number from 0 to 1"):
        parse_brightness(bad)


def test_a_missing_parameter_says_so() -> None:
    with pytest.raises(ToolError, match="missing"):
        brightness_tool(ScreenBrightnessControl(FakeSbc())).handler({})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@given(json_values)
def test_any_json_value_is_either_set_or_refused_with_a_tool_error(value: Any) -> None:
    fake = FakeSbc()
    tool = brightness_tool(ScreenBrightnessControl(fake, platform="win32"))
    try:
        outcome = tool.handler({"brightness": value})
    except ToolError as exc:
        refusal = str(exc)
        assert len(refusal) < 200  # readable, not a dump of the input
        assert fake.calls == []
    else:
        assert isinstance(outcome, ToolOutcome)
        assert isinstance(stringify_result(outcome.value), str)
        assert 0 <= fake.calls[0] <= 100


@given(st.floats(min_value=0, max_value=1))
def test_every_valid_level_reaches_the_screen_in_percent(level: float) -> None:
    fake = FakeSbc()
    change(ScreenBrightnessControl(fake, platform="linux"), json.loads(json.dumps(level)))
    assert fake.calls == [round(level * 100)]


# ------------------------------------------------------------------ the backend with fakes


def test_returns_the_brightness_actually_set() -> None:
    fake = FakeSbc(levels=[70, 40])
    outcome = change(ScreenBrightnessControl(fake, platform="win32"), 0.05)
    assert fake.calls == [5]
    assert outcome.value == "0.1"  # the panel's floor, not what was asked
    assert outcome.detail == "brightness set to 10 %"


def test_get_reads_the_first_display() -> None:
    assert ScreenBrightnessControl(FakeSbc(levels=[55, 20])).get() == 0.55


def test_no_valid_display_from_the_package(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    fake = FakeSbc(fail=FakeSbc.NoValidDisplayError("no valid displays"))
    backend = ScreenBrightnessControl(fake, platform="linux")
    for _ in range(2):
        with pytest.raises(NoControllableDisplay) as caught:
            change(backend, 0.5)
        assert str(caught.value) == NO_DISPLAY
    assert caplog.text.count(LINUX_ACCESS_HINT) == 1  # said once, not on every call


def test_no_display_is_remembered_for_a_while_then_checked_again() -> None:
    now = [0.0]
    fake = FakeSbc(fail=FakeSbc.NoValidDisplayError("no valid displays"))
    probes = 0
    real_get = fake.get_brightness

    def counting_get() -> list[int]:
        nonlocal probes
        probes += 1
        return real_get()

    fake.get_brightness = counting_get  # type: ignore[method-assign]
    backend = ScreenBrightnessControl(fake, recheck_s=30, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(NoControllableDisplay):
            backend.get()
    assert probes == 1  # the slow probe ran once
    now[0] = 31.0
    fake.fail = None  # a monitor was plugged in
    assert backend.get() == 0.7
    assert probes == 2


def test_windows_does_not_log_the_linux_hint(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    fake = FakeSbc(fail=FakeSbc.NoValidDisplayError("no valid displays"))
    with pytest.raises(NoControllableDisplay):
        change(ScreenBrightnessControl(fake, platform="win32"), 0.5)
    assert "video" not in caplog.text


def test_an_empty_display_list_is_no_display() -> None:
    with pytest.raises(NoControllableDisplay):
        change(ScreenBrightnessControl(FakeSbc(levels=[])), 0.5)


def test_permission_denied(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    fake = FakeSbc(fail=PermissionError(13, "Permission denied: /sys/class/backlight/x"))
    with pytest.raises(BrightnessPermissionError) as caught:
        change(ScreenBrightnessControl(fake, platform="linux"), 0.5)
    assert str(caught.value) == NO_PERMISSION
    assert "usermod -aG video" in caplog.text


def test_an_unexpected_failure_names_its_kind_only(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeSbc(fail=ValueError("i2c bus 7 said 0x6f"))
    with pytest.raises(ToolError, match=r"^changing the brightness failed \(ValueError\)\.$"):
        change(ScreenBrightnessControl(fake), 0.5)


def test_a_slow_ddc_monitor_still_answers() -> None:
    fake = FakeSbc(levels=[30], delay_s=0.4)
    started = time.monotonic()
    assert change(ScreenBrightnessControl(fake), 0.8).value == "0.8"
    assert time.monotonic() - started >= 0.4


def test_unavailable_backend() -> None:
    with pytest.raises(NoControllableDisplay):
        Unavailable().get()
    with pytest.raises(NoControllableDisplay, match="nothing"):
        change(Unavailable("nothing here"), 0.5)


def test_macos_gets_the_display_services_backend_or_unavailable() -> None:
    backend = default_backend("darwin")  # ctypes cannot load the framework off a Mac
    if sys.platform != "darwin":
        assert isinstance(backend, Unavailable)
