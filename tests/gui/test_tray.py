"""The tray icon's menu runs a real conversation with the local demo agent (the actions
are triggered as a click in the tray would; offscreen there is no tray to show them);
a conversation that ends or fails while the window is hidden or minimised is notified
with the window's sentence; closing the window keeps a conversation in the tray, or
quits, per the setting."""

from __future__ import annotations

import asyncio
import logging

import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractButton, QSystemTrayIcon

from tests.gui.conftest import Gui, until
from tests.gui.desktop import Notifications, open_shell
from voicedesk.config import Settings, load_settings
from voicedesk.ui.shell import WindowShell
from voicedesk.ui.tray import TRAY_COLORS, tray_icon, tray_state

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]


def mute_button(shell: WindowShell) -> QAbstractButton:
    button = shell.window.findChild(QAbstractButton, "muteButton")
    assert button is not None
    return button


def agent_session(shell: WindowShell) -> object:
    server = shell.controller.launcher.demo_server
    assert server is not None
    assert server.sessions
    return server.sessions[-1]


@pytest.mark.parametrize(
    ("status", "starting", "failed", "state"),
    [
        ("disconnected", False, False, "idle"),
        ("disconnected", True, False, "connecting"),
        ("connecting", False, False, "connecting"),
        ("connected", False, False, "connected"),
        ("disconnecting", False, False, "connected"),
        ("disconnected", False, True, "error"),
        ("connecting", False, True, "connecting"),
    ],
)
def test_the_tray_state_follows_the_conversation(
    status: str, starting: bool, failed: bool, state: str
) -> None:
    assert tray_state(status, starting=starting, failed=failed) == state


def test_each_tray_state_has_its_own_icon(qapp: object) -> None:
    images = {state: tray_icon(state).pixmap(64, 64).toImage() for state in TRAY_COLORS}
    for state, image in images.items():
        corner = image.pixelColor(image.width() - 16, image.height() - 16)
        assert corner.name().upper() == TRAY_COLORS[state].upper(), state
    assert len({image.pixelColor(48, 48).name() for image in images.values()}) == 4


def test_tray_menu_starts_mutes_hides_shows_ends_and_quits(gui: Gui) -> None:
    notes = Notifications()
    shell = open_shell(gui, "--demo", "--text-only", notifier=notes)
    tray = shell.tray
    w = shell.window
    assert tray.state == "idle"
    assert tray.icon.toolTip() == "voicedesk: No conversation"
    assert tray.start_end_action.text() == "Start conversation"
    texts = [a.text() for a in tray.menu.actions() if not a.isSeparator()]
    assert texts == [
        "No conversation",
        "Start conversation",
        "Mute",
        "Show voicedesk",
        "Compact mode",
        "Quit",
    ]

    async def flow() -> None:
        tray.start_end_action.trigger()
        await until(lambda: shell.controller.status == "connected", "Connected")
        assert tray.state == "connected"
        assert tray.icon.toolTip() == "voicedesk: In a conversation"
        assert tray.status_action.text() == "In a conversation"
        assert tray.start_end_action.text() == "End conversation"

        # A text conversation has no microphone: Mute is off in the tray as in the window.
        assert not mute_button(shell).isEnabled()
        assert not tray.mute_action.isEnabled()
        tray.toggle_mute()  # the global shortcut's path
        assert not mute_button(shell).isChecked()

        # Closing the window during the call hides it; the call goes on in the tray.
        assert w.close() is False
        assert not w.isVisible()
        assert not shell.closed.is_set()
        assert shell.controller.status == "connected"
        assert notes.titles() == ["voicedesk is still running"]
        tray.show_action.trigger()
        assert w.isVisible()

        # The agent ends it while the window is hidden: a notification says so.
        w.close()
        assert not w.isVisible()
        tray.start_end_action.trigger()
        await until(lambda: shell.controller.status == "disconnected", "Disconnected")
        title, sentence, is_error = notes.shown[-1]
        assert (title, is_error) == ("Conversation ended", False)
        assert sentence == "You ended the conversation."
        assert tray.state == "idle"
        assert tray.start_end_action.text() == "Start conversation"

        # Quit: the app's close path (the shell's closed event, then shutdown).
        tray.quit_action.trigger()
        assert shell.closed.is_set()
        await shell.shutdown()
        assert shell.controller.status == "disconnected"

    gui.run(flow())


def test_quit_from_the_tray_ends_a_running_conversation_cleanly(gui: Gui) -> None:
    shell = open_shell(gui, "--demo", "--text-only", notifier=Notifications())

    async def flow() -> None:
        shell.tray.start_end_action.trigger()
        await until(lambda: shell.controller.status == "connected", "Connected")
        session = agent_session(shell)
        shell.window.close()  # into the tray
        assert not shell.closed.is_set()
        shell.tray.quit_action.trigger()
        assert shell.closed.is_set()
        await shell.shutdown()  # what run_window does once closed is set
        assert shell.controller.status == "disconnected"
        # The agent saw the conversation end (its socket closed), not a drop.
        await session.wait_for(lambda s: s.closed)  # type: ignore[attr-defined]

    gui.run(flow())


def test_a_failure_while_minimised_is_notified_with_the_banner_sentence(gui: Gui) -> None:
    notes = Notifications()
    shell = open_shell(gui, "--demo", "--text-only", notifier=notes)

    async def flow() -> None:
        shell.tray.start_or_end()
        await until(lambda: shell.controller.status == "connected", "Connected")
        shell.window.showMinimized()
        assert shell.window.isMinimized()
        agent_session(shell).drop()  # type: ignore[attr-defined]
        await until(lambda: bool(notes.shown), "a notification")
        title, sentence, is_error = notes.shown[-1]
        assert (title, is_error) == ("Conversation failed", True)
        assert sentence.startswith("The connection to the agent was lost")
        assert sentence in shell.window.banner.text()
        assert shell.tray.state == "error"
        assert shell.tray.icon.toolTip() == "voicedesk: The last conversation failed"
        # The next conversation clears the error look.
        shell.tray.start_end_action.trigger()
        await until(lambda: shell.tray.state == "connected", "connected again")

    gui.run(flow())


def test_no_notification_while_the_window_is_in_view(gui: Gui) -> None:
    notes = Notifications()
    shell = open_shell(gui, "--demo", "--text-only", notifier=notes)

    async def flow() -> None:
        shell.tray.start_or_end()
        await until(lambda: shell.controller.status == "connected", "Connected")
        shell.tray.start_or_end()
        await until(lambda: shell.controller.status == "disconnected", "Disconnected")
        assert notes.shown == []

    gui.run(flow())


@pytest.mark.parametrize(
    ("close_quits", "system_tray", "call", "quits"),
    [
        (False, True, True, False),  # the default: the call goes on in the tray
        (True, True, True, True),  # "Closing the window quits"
        (False, False, True, True),  # no system tray: as before
        (False, True, False, True),  # no conversation: as before
    ],
)
def test_closing_the_window_keeps_a_call_in_the_tray_or_quits(
    gui: Gui, close_quits: bool, system_tray: bool, call: bool, quits: bool
) -> None:
    settings = Settings(close_quits=close_quits)
    shell = open_shell(
        gui,
        "--demo",
        "--text-only",
        settings=settings,
        system_tray=system_tray,
        notifier=Notifications(),
    )

    async def flow() -> None:
        if call:
            shell.tray.start_or_end()
            await until(lambda: shell.controller.status == "connected", "Connected")
        shell.window.close()
        assert shell.closed.is_set() is quits
        assert not shell.window.isVisible()
        if not quits:
            assert shell.controller.status == "connected"
        # Either way the window's place was saved.
        assert load_settings().window_geometry

    gui.run(flow())


def test_without_a_system_tray_the_log_says_so(gui: Gui, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="voicedesk.ui.shell"):
        shell = open_shell(gui, "--demo", "--text-only", system_tray=False)
    assert "no system tray on this desktop" in caplog.text
    assert not shell.tray.icon.isVisible()
    if QGuiApplication.platformName() == "offscreen":  # Qt itself finds none there
        assert QSystemTrayIcon.isSystemTrayAvailable() is False


@pytest.mark.usefixtures("pulse")
def test_tray_mute_is_the_window_mute_in_a_voice_call(gui: Gui) -> None:
    shell = open_shell(gui, "--demo", "--no-aec", notifier=Notifications())
    tray = shell.tray

    async def flow() -> None:
        tray.start_end_action.trigger()
        await until(lambda: shell.controller.status == "connected", "Connected", 20)
        await until(lambda: tray.mute_action.isEnabled(), "Mute offered in the tray")
        conversation = shell.controller.conversation
        assert conversation is not None
        tray.mute_action.trigger()
        assert mute_button(shell).isChecked()
        assert mute_button(shell).text() == "Unmute"
        assert conversation.is_mic_muted
        # The agent hears exact silence from now on.
        session = agent_session(shell)
        await asyncio.sleep(0.2)  # chunks already on their way
        start = len(session.audio_in)  # type: ignore[attr-defined]
        await session.wait_for(lambda s: len(s.audio_in) > start + 6400)  # type: ignore[attr-defined]
        assert not any(session.audio_in[start:])  # type: ignore[attr-defined]
        mute_button(shell).click()  # the window's button: the tray follows
        assert not tray.mute_action.isChecked()
        assert not conversation.is_mic_muted
        tray.toggle_mute()  # the global shortcut's path
        assert tray.mute_action.isChecked()
        assert conversation.is_mic_muted
        tray.start_end_action.trigger()
        await until(lambda: shell.controller.status == "disconnected", "Disconnected", 20)

    gui.run(flow(), timeout=60)
