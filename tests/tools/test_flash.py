"""flashScreen: the overlay, the brightness pulse and its restore, the rate limit."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
from typing import Any

import pytest

from tests.session.helpers import LoopTicks
from voicedesk.tools.brightness import NoControllableDisplay, Unavailable
from voicedesk.tools.flash import FlashRateLimit, TerminalFlash, brightness_pulse, flash_tool
from voicedesk.tools.registry import ToolError, ToolOutcome


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingSurface:
    def __init__(self) -> None:
        self.flashes: list[int] = []

    async def flash(self, duration_ms: int) -> str:
        self.flashes.append(duration_ms)
        await asyncio.sleep(duration_ms / 1000)
        return "a white overlay on 2 screens"


class RecordingBacklight:
    """A controllable screen that remembers every level it was set to."""

    def __init__(self, level: float = 0.35, fail_set_at: int | None = None) -> None:
        self.level = level
        self.history: list[float] = []
        self.fail_set_at = fail_set_at
        self.lock = threading.Lock()

    def get(self) -> float:
        return self.level

    def set(self, level: float) -> float:
        with self.lock:
            if self.fail_set_at is not None and len(self.history) == self.fail_set_at:
                self.history.append(-1)
                raise ToolError("the monitor stopped answering")
            self.history.append(level)
            self.level = level
            return level


async def run(tool: Any) -> ToolOutcome:
    outcome = await tool.handler({})
    assert isinstance(outcome, ToolOutcome)
    return outcome


async def test_flash_shows_the_overlay_and_pulses_then_restores_the_brightness() -> None:
    surface, backlight = RecordingSurface(), RecordingBacklight(0.35)
    outcome = await run(flash_tool(surface, backlight, FlashRateLimit(), duration_ms=30))
    assert surface.flashes == [30]
    assert backlight.history == [1.0, 0.35]
    assert backlight.level == 0.35  # unlike the tutorial's, the screen is not left dark
    assert outcome.value == "Flashed the screen."
    assert outcome.detail == "a white overlay on 2 screens and a brightness pulse (restored)"


async def test_flash_without_a_controllable_screen_still_flashes_the_overlay() -> None:
    surface = RecordingSurface()
    outcome = await run(flash_tool(surface, Unavailable(), FlashRateLimit(), duration_ms=10))
    assert surface.flashes == [10]
    assert outcome.detail == "a white overlay on 2 screens"


def test_the_restore_runs_even_when_the_pulse_fails_half_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backlight = RecordingBacklight(0.6, fail_set_at=0)  # setting full brightness fails
    with pytest.raises(ToolError):
        brightness_pulse(backlight, 1)
    assert backlight.history == [-1, 0.6]
    assert backlight.level == 0.6


def test_a_failed_restore_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    backlight = RecordingBacklight(0.6, fail_set_at=1)
    assert brightness_pulse(backlight, 1)
    assert "could not restore the brightness to 0.60" in caplog.text


def test_no_pulse_where_nothing_is_controllable() -> None:
    class NoScreen:
        def get(self) -> float:
            raise NoControllableDisplay("none")

        def set(self, level: float) -> float:  # pragma: no cover - never reached
            raise AssertionError

    assert brightness_pulse(NoScreen(), 1) is False


async def test_the_flash_does_not_block_the_event_loop_on_a_slow_monitor() -> None:
    class SlowBacklight(RecordingBacklight):
        def set(self, level: float) -> float:
            time.sleep(0.15)
            return super().set(level)

    backlight = SlowBacklight(0.5)
    async with LoopTicks() as ticks:
        await run(flash_tool(RecordingSurface(), backlight, FlashRateLimit(), duration_ms=20))
    assert backlight.history == [1.0, 0.5]
    assert ticks.count >= 10


def test_rate_limit_one_per_second_three_per_ten_seconds() -> None:
    clock = FakeClock()
    limit = FlashRateLimit(clock=clock)
    assert limit.acquire() is None
    clock.now += 0.5
    refused = limit.acquire()
    assert refused is not None
    assert "one flash a second" in refused
    assert "Try again in 1 s" in refused
    clock.now += 0.5
    assert limit.acquire() is None  # t = 1.0
    clock.now += 1.0
    assert limit.acquire() is None  # t = 2.0: three in the window
    clock.now += 1.0
    refused = limit.acquire()  # t = 3.0: a fourth within 10 s
    assert refused is not None
    assert "Try again in 7 s" in refused
    clock.now += 6.9
    assert limit.acquire() is not None  # t = 9.9: still refused
    clock.now += 0.1
    assert limit.acquire() is None  # t = 10.0: the first flash left the window


async def test_a_refused_flash_is_a_tool_error_and_shows_nothing() -> None:
    clock = FakeClock()
    surface = RecordingSurface()
    tool = flash_tool(surface, None, FlashRateLimit(clock=clock), duration_ms=1)
    await run(tool)
    with pytest.raises(ToolError, match="won't flash the screen again so soon"):
        await run(tool)
    assert surface.flashes == [1]


async def test_a_strobing_agent_gets_at_most_three_flashes_in_ten_seconds() -> None:
    clock = FakeClock()
    surface = RecordingSurface()
    tool = flash_tool(surface, None, FlashRateLimit(clock=clock), duration_ms=0)
    for _ in range(100):  # a call every 100 ms for 10 s
        with contextlib.suppress(ToolError):
            await run(tool)
        clock.now += 0.1
    assert len(surface.flashes) == 3


async def test_the_terminal_flash_is_a_visual_bell_that_switches_back() -> None:
    out = io.StringIO()
    shown = await TerminalFlash(out).flash(5)
    assert out.getvalue() == "\033[?5h\a\033[?5l"
    assert "terminal visual bell" in shown


async def test_the_terminal_flash_switches_back_when_cancelled() -> None:
    out = io.StringIO()
    task = asyncio.ensure_future(TerminalFlash(out).flash(10_000))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert out.getvalue().endswith("\033[?5l")
