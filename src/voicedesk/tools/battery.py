"""``getBatteryLevel``: the battery level as a decimal 0..1 (the tutorial's dashboard)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from voicedesk.tools.registry import (
    ClientTool,
    ToolDefinition,
    ToolError,
    ToolOutcome,
    format_fraction,
)

logger = logging.getLogger(__name__)

NO_BATTERY = "This computer has no battery, so I can't read a battery level."

DEFINITION = ToolDefinition(
    name="getBatteryLevel",
    description="Gets the device battery level as decimal point percentage.",
)


@dataclass(frozen=True, slots=True)
class BatteryStatus:
    """``level`` 0..1; ``plugged_in`` and ``seconds_left`` are ``None`` when unknown."""

    level: float
    plugged_in: bool | None
    seconds_left: int | None = None


class BatteryReader(Protocol):
    def read(self) -> BatteryStatus | None:
        """The battery now, or ``None`` when there is none. May raise :class:`ToolError`."""


class PsutilBattery:
    """The real battery, through ``psutil.sensors_battery()``."""

    def __init__(self, sensors_battery: Callable[[], Any] | None = None) -> None:
        if sensors_battery is None:
            import psutil

            sensors_battery = psutil.sensors_battery
        self._sensors_battery = sensors_battery

    def read(self) -> BatteryStatus | None:
        try:
            battery = self._sensors_battery()
        except (NotImplementedError, OSError, RuntimeError, AttributeError) as exc:
            # Containers and some VMs raise instead of returning None.
            logger.info("no battery information: %s", exc)
            return None
        if battery is None:
            return None
        seconds = battery.secsleft
        known_seconds = isinstance(seconds, int) and seconds >= 0
        return BatteryStatus(
            level=min(1.0, max(0.0, float(battery.percent) / 100.0)),
            plugged_in=battery.power_plugged,
            seconds_left=seconds if known_seconds else None,
        )


def describe(status: BatteryStatus) -> str:
    """A line for the user's tool-activity entry: percent and charging state."""
    percent = f"{round(status.level * 100)} %"
    if status.plugged_in is True:
        state = "fully charged" if status.level >= 0.995 else "charging"
    elif status.plugged_in is False:
        state = "on battery"
        if status.seconds_left is not None:
            hours, rest = divmod(status.seconds_left, 3600)
            state += f", {hours} h {rest // 60:02d} min left"
    else:
        state = "charging state unknown"
    return f"{percent}, {state}"


def battery_tool(reader: BatteryReader | None = None) -> ClientTool:
    source = reader if reader is not None else PsutilBattery()

    def get_battery_level(parameters: Mapping[str, Any]) -> ToolOutcome:
        status = source.read()
        if status is None:
            raise ToolError(NO_BATTERY)
        return ToolOutcome(format_fraction(status.level), describe(status))

    return ClientTool(DEFINITION, get_battery_level)
