"""The window under test: offscreen Qt, asyncio on Qt's thread (qasync), the local agent.

Tests are plain functions that run a coroutine on a qasync loop (``gui.run(...)``),
so widgets, the session and the local agent all live on one thread, as in the app.
Screenshots of each state go to ``$VOICEDESK_SCREENSHOTS`` (default
``build/screenshots``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

# Offscreen unless the run chose a platform (scripts/test exports the same); set before
# the QApplication exists, which pytest-qt creates on first use.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from tests.conftest import scaled
from voicedesk.config import Settings
from voicedesk.launch import LaunchPlan, resolve
from voicedesk.localagent import AgentConfig
from voicedesk.ui.shell import WindowShell, new_event_loop

T = TypeVar("T")
SETTLE_S = 0.05
SCREENSHOTS = Path(os.environ.get("VOICEDESK_SCREENSHOTS", "build/screenshots"))


class Gui:
    """One window and its loop. ``shell`` is built by :meth:`open`."""

    def __init__(self, app: QApplication, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.shell: WindowShell | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(scaled(timeout)):
                result = await coro
            # qasync's run_until_complete processes Qt events once more after the loop
            # stopped running: a callback landing there (the agent finishing a connection
            # it just closed, say) runs with no running loop and fails. Let such chains
            # end while the loop still runs.
            await asyncio.sleep(SETTLE_S)
            return result

        return self.loop.run_until_complete(bounded())

    def open(
        self,
        *argv: str,
        settings: Settings | None = None,
        demo_config: AgentConfig | None = None,
        plan: LaunchPlan | None = None,
    ) -> WindowShell:
        from voicedesk.app import build_parser

        # As make_application: closing the window ends the conversation, not the loop.
        self.app.setQuitOnLastWindowClosed(False)
        args = build_parser().parse_args(list(argv))
        settings = settings or Settings()
        plan = plan or resolve(args, settings, {})
        self.shell = WindowShell(
            args,
            plan,
            settings,
            demo_config=demo_config or AgentConfig(ping_interval_s=0.2),
        )
        self.shell.show()
        return self.shell

    def close(self) -> None:
        """End the conversation, stop the agent, close the window and the loop.

        Everything must finish while the loop runs: a callback left for later would
        run outside it when Qt next processes events (pytest-qt does, between tests)."""
        if self.loop.is_closed():
            return
        shell, self.shell = self.shell, None
        try:
            if shell is not None:
                try:
                    self.run(shell.shutdown(), timeout=15)
                finally:
                    shell.window.close()
                    shell.window.deleteLater()
            self.loop.run_until_complete(asyncio.sleep(0.05))  # let closing sockets settle
            left = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            assert not left, f"tasks left running after the window closed: {left}"
        finally:
            self.loop.close()  # also shuts its worker threads down
            asyncio.set_event_loop(None)


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (on the Qt loop) until ``check()`` holds."""
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; window text: {_texts()}")
        await asyncio.sleep(0.01)


def screenshot(widget: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert widget.grab().save(str(path)), f"could not write {path}"
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """End the window's conversation and agent while the test's loop still runs.

    pytest-qt processes Qt events before fixtures are torn down; qasync delivers
    asyncio callbacks as Qt timer events, and outside ``run_until_complete`` they would
    run with no running loop. So the shutdown happens here, at the end of the call."""
    try:
        return (yield)
    finally:
        harness = getattr(item, "funcargs", {}).get("gui")
        if isinstance(harness, Gui):
            harness.close()


@pytest.fixture
def gui(qapp: QApplication) -> Iterator[Gui]:
    loop = new_event_loop(qapp)
    asyncio.set_event_loop(loop)
    harness = Gui(qapp, loop)
    try:
        yield harness
    finally:
        harness.close()


def namespace(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(**values)


def _texts() -> str:
    """What the open windows show, for a failure message."""
    from voicedesk.ui.transcript_view import TranscriptView

    shown = []
    for widget in QApplication.topLevelWidgets():
        for view in widget.findChildren(TranscriptView):
            shown.append(view.toPlainText())
    return repr(shown)[:2000]
