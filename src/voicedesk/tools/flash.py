"""``flashScreen``: a short white flash, rate-limited, leaving the screen as it was.

The tutorial's version sets the brightness to 1 then 0, leaving the screen dark.
Ours shows a white overlay on every screen (works everywhere; the ui layer injects
it, so no Qt here) and, where the brightness is controllable, pulses it to full and
restores the previous level afterwards, even when the pulse is cut short.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TextIO

from voicedesk.concurrency import run_in_daemon_thread
from voicedesk.tools.brightness import BrightnessBackend
from voicedesk.tools.registry import ClientTool, ToolDefinition, ToolError, ToolOutcome

logger = logging.getLogger(__name__)

FLASH_MS = 200
DEFINITION = ToolDefinition(
    name="flashScreen",
    description="Quickly flashes the screen on and off.",
)


class FlashSurface(Protocol):
    async def flash(self, duration_ms: int) -> str:
        """Show a flash for ``duration_ms``; return what was shown, for the user's log
        (e.g. "a white overlay on 2 screens")."""


class TerminalFlash:
    """Console mode: the terminal's visual bell (reverse video, DEC mode 5) and a bell."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    async def flash(self, duration_ms: int) -> str:
        out = self._out or sys.stdout
        out.write("\033[?5h\a")
        out.flush()
        try:
            await asyncio.sleep(duration_ms / 1000.0)
        finally:
            out.write("\033[?5l")
            out.flush()
        return "a terminal visual bell; console mode has no window to flash"


class FlashRateLimit:
    """At most one flash per ``min_interval_s`` and ``max_flashes`` per ``window_s``, so a
    misbehaving agent cannot strobe the screen."""

    def __init__(
        self,
        min_interval_s: float = 1.0,
        max_flashes: int = 3,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.max_flashes = max_flashes
        self.window_s = window_s
        self._clock = clock
        self._flashes: deque[float] = deque()

    def acquire(self) -> str | None:
        """Record a flash now and return ``None``, or return why it is refused."""
        now = self._clock()
        while self._flashes and now - self._flashes[0] >= self.window_s:
            self._flashes.popleft()
        if self._flashes and now - self._flashes[-1] < self.min_interval_s:
            wait = self.min_interval_s - (now - self._flashes[-1])
        elif len(self._flashes) >= self.max_flashes:
            wait = self.window_s - (now - self._flashes[0])
        else:
            self._flashes.append(now)
            return None
        return (
            "I won't flash the screen again so soon: at most one flash a second and "
            f"{self.max_flashes} in {self.window_s:g} seconds, to protect people who are "
            f"sensitive to flashing light. Try again in {max(1, round(wait + 0.49))} s."
        )


def brightness_pulse(backend: BrightnessBackend, duration_ms: int) -> bool:
    """Full brightness for ``duration_ms``, then the previous level. Blocking.

    ``False`` when the brightness is not controllable here. The restore runs whatever
    happens in between.
    """
    try:
        previous = backend.get()
    except ToolError:
        return False
    try:
        backend.set(1.0)
        time.sleep(duration_ms / 1000.0)
    finally:
        try:
            backend.set(previous)
        except ToolError as exc:
            logger.warning("could not restore the brightness to %.2f: %s", previous, exc)
    return True


def flash_tool(
    surface: FlashSurface,
    brightness: BrightnessBackend | None = None,
    limit: FlashRateLimit | None = None,
    duration_ms: int = FLASH_MS,
) -> ClientTool:
    rate = limit if limit is not None else FlashRateLimit()

    async def flash_screen(parameters: Mapping[str, Any]) -> ToolOutcome:
        refused = rate.acquire()
        if refused is not None:
            raise ToolError(refused)
        pulse: asyncio.Future[bool] | None = None
        if brightness is not None:
            backend = brightness
            pulse = asyncio.ensure_future(
                run_in_daemon_thread("flash-pulse", lambda: brightness_pulse(backend, duration_ms))
            )
        shown = await surface.flash(duration_ms)
        pulsed = await pulse if pulse is not None else False
        detail = shown + (" and a brightness pulse (restored)" if pulsed else "")
        return ToolOutcome("Flashed the screen.", detail)

    return ClientTool(DEFINITION, flash_screen)
