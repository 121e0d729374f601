"""getBatteryLevel: the real psutil path on this machine, and every battery state with fakes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from voicedesk.tools.battery import NO_BATTERY, BatteryStatus, PsutilBattery, battery_tool
from voicedesk.tools.registry import ToolError, ToolOutcome


def battery(percent: float, plugged: bool | None, secsleft: Any = -1) -> SimpleNamespace:
    # psutil's sbattery: secsleft is POWER_TIME_UNLIMITED / POWER_TIME_UNKNOWN (negative ints)
    return SimpleNamespace(percent=percent, power_plugged=plugged, secsleft=secsleft)


def call(reader: Any) -> ToolOutcome:
    outcome = battery_tool(reader).handler({})
    assert isinstance(outcome, ToolOutcome)
    return outcome


def test_the_real_battery_of_this_machine() -> None:
    """Whatever this machine has, the tool answers as the agent expects."""
    real = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
    tool = battery_tool()
    if real is None:
        with pytest.raises(ToolError) as caught:
            tool.handler({})
        assert str(caught.value) == NO_BATTERY
    else:  # pragma: no cover - CI machines have no battery
        outcome = tool.handler({})
        assert isinstance(outcome, ToolOutcome)
        assert 0.0 <= float(outcome.value) <= 1.0


@pytest.mark.parametrize(
    ("percent", "value"),
    [(82, "0.82"), (100, "1"), (0, "0"), (5, "0.05"), (33.333, "0.33"), (99.6, "1"), (50, "0.5")],
)
def test_levels_are_decimals_with_two_places_at_most(percent: float, value: str) -> None:
    outcome = call(PsutilBattery(lambda: battery(percent, True)))
    assert outcome.value == value


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (battery(82, True), "82 %, charging"),
        (battery(100, True), "100 %, fully charged"),
        (battery(41, False, 5400), "41 %, on battery, 1 h 30 min left"),
        (battery(41, False, psutil.POWER_TIME_UNKNOWN), "41 %, on battery"),
        (battery(41, None), "41 %, charging state unknown"),
    ],
)
def test_the_charging_state_goes_to_the_user_not_the_agent(
    status: SimpleNamespace, detail: str
) -> None:
    outcome = call(PsutilBattery(lambda: status))
    assert outcome.detail == detail
    assert "%" not in str(outcome.value)


def test_no_battery_is_a_sentence_the_agent_can_read_out() -> None:
    with pytest.raises(ToolError, match=r"^This computer has no battery"):
        call(PsutilBattery(lambda: None))


@pytest.mark.parametrize(
    "error", [NotImplementedError(), OSError(2, "no such file"), RuntimeError()]
)
def test_psutil_raising_in_a_container_is_no_battery(error: Exception) -> None:
    def raises() -> None:
        raise error

    with pytest.raises(ToolError) as caught:
        call(PsutilBattery(raises))
    assert str(caught.value) == NO_BATTERY


def test_out_of_range_readings_are_clamped() -> None:
    # Some firmwares report 101 % while charging.
    assert call(PsutilBattery(lambda: battery(101, True))).value == "1"


class FixedReader:
    def __init__(self, status: BatteryStatus | None) -> None:
        self.status = status

    def read(self) -> BatteryStatus | None:
        return self.status


def test_any_reader_behind_the_interface() -> None:
    assert call(FixedReader(BatteryStatus(0.25, False))).value == "0.25"
    with pytest.raises(ToolError):
        call(FixedReader(None))
