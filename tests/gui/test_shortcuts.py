"""Global shortcuts: where they work (and the sentence where they do not), the keys a
user may choose, and, on a real X server (a private Xvfb), the shortcut pressed while
another app's window has the focus starts, mutes and ends a conversation."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton

from tests.gui.conftest import Gui, until
from tests.gui.desktop import Notifications, XClient, open_shell, xvfb
from voicedesk.ui.shortcuts import (
    MUTE,
    START_END,
    GlobalShortcuts,
    KeyCombo,
    parse_bindings,
    support,
    windows_vk,
    x_keysym,
)

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]


@pytest.fixture
def x_display() -> Iterator[str]:
    with xvfb() as display:
        yield display


@pytest.mark.parametrize(
    ("env", "platform", "available", "words"),
    [
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False, "unavailable on Wayland"),
        (
            {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"},
            "linux",
            False,
            "unavailable on Wayland",
        ),
        ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, "linux", True, "(X11)"),
        ({}, "linux", False, "no X display"),
        ({}, "win32", True, "(Windows)"),
        ({}, "darwin", False, "Accessibility permission"),
    ],
)
def test_where_global_shortcuts_work_is_said(
    env: dict[str, str], platform: str, available: bool, words: str
) -> None:
    found = support(env, platform)
    assert found.available is available
    assert words in found.sentence


def test_the_wayland_sentence_says_why(qapp: object) -> None:
    shortcuts = GlobalShortcuts({"WAYLAND_DISPLAY": "wayland-0"})
    assert shortcuts.apply({START_END: "Ctrl+Alt+Space"}) == []
    assert "Wayland" in shortcuts.sentence
    assert "other apps' windows" in shortcuts.sentence


def test_keys_a_global_shortcut_may_use(qapp: object) -> None:
    combo = KeyCombo.parse("Ctrl+Alt+Space")
    assert combo.modifiers == {"ctrl", "alt"}
    assert x_keysym(combo.key) == 0x20
    assert windows_vk(combo.key) == 0x20
    m = KeyCombo.parse("Ctrl+Shift+M")
    assert (x_keysym(m.key), windows_vk(m.key)) == (ord("m"), ord("M"))
    f9 = KeyCombo.parse("Meta+F9")
    assert (x_keysym(f9.key), windows_vk(f9.key)) == (0xFFC6, 0x78)
    with pytest.raises(ValueError, match="needs Ctrl, Alt or Meta"):
        KeyCombo.parse("M")
    with pytest.raises(ValueError, match="needs Ctrl, Alt or Meta"):
        KeyCombo.parse("Shift+F2")
    with pytest.raises(ValueError, match="two different keys"):
        parse_bindings({START_END: "Ctrl+Alt+K", MUTE: "Ctrl+Alt+K"})
    assert parse_bindings({START_END: "", MUTE: "Ctrl+Alt+M"}).keys() == {MUTE}


def test_a_shortcut_pressed_in_another_app_starts_and_ends_a_conversation(
    gui: Gui, x_display: str
) -> None:
    other = XClient(x_display)
    shell = open_shell(
        gui, "--demo", "--text-only", notifier=Notifications(), shortcut_env={"DISPLAY": x_display}
    )
    pressed: list[str] = []
    shell.shortcuts.triggered.connect(pressed.append)

    async def flow() -> None:
        await until(lambda: bool(shell.shortcuts.bindings), "the shortcuts grabbed")
        assert shell.shortcuts.problems == []
        assert other.has_focus()
        other.press("Control_L", "Alt_L", "space")
        await until(lambda: shell.controller.status == "connected", "Connected by the key")
        other.press("Control_L", "Alt_L", "space")
        await until(lambda: shell.controller.status == "disconnected", "ended by the key")
        assert pressed == [START_END, START_END]
        # The key went to voicedesk, not to the window that had the focus.
        assert 0x20 not in other.keys_seen()  # XK_space
        assert other.has_focus()
        other.press("a")
        typed: list[int] = []
        await until(lambda: bool(typed.extend(other.keys_seen()) or typed), "a plain key")
        assert typed == [ord("a")]

    try:
        gui.run(flow())
    finally:
        other.close()


@pytest.mark.usefixtures("pulse")
def test_the_mute_shortcut_mutes_a_voice_call_from_another_app(gui: Gui, x_display: str) -> None:
    other = XClient(x_display)
    shell = open_shell(
        gui, "--demo", "--no-aec", notifier=Notifications(), shortcut_env={"DISPLAY": x_display}
    )
    mute = shell.window.findChild(QAbstractButton, "muteButton")
    assert mute is not None

    async def flow() -> None:
        await until(lambda: bool(shell.shortcuts.bindings), "the shortcuts grabbed")
        other.press("Control_L", "Alt_L", "space")
        await until(lambda: shell.controller.status == "connected", "Connected by the key", 20)
        await until(lambda: mute.isEnabled(), "mute offered")
        conversation = shell.controller.conversation
        assert conversation is not None
        other.press("Control_L", "Alt_L", "m")
        await until(lambda: conversation.is_mic_muted, "muted by the key")
        assert mute.isChecked()
        assert shell.tray.mute_action.isChecked()
        other.press("Control_L", "Alt_L", "m")
        await until(lambda: not conversation.is_mic_muted, "unmuted by the key")
        assert not mute.isChecked()
        other.press("Control_L", "Alt_L", "space")
        await until(lambda: shell.controller.status == "disconnected", "ended by the key", 20)

    try:
        gui.run(flow(), timeout=60)
    finally:
        other.close()


def test_a_shortcut_another_app_holds_is_said(
    gui: Gui, x_display: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = XClient(x_display)
    other.grab("Control_L", "Alt_L", "m")
    with caplog.at_level(logging.WARNING, logger="voicedesk.ui.shortcuts"):
        shell = open_shell(gui, "--demo", "--text-only", shortcut_env={"DISPLAY": x_display})

        async def flow() -> None:
            await until(lambda: bool(shell.shortcuts.bindings), "the shortcuts grabbed")

        gui.run(flow())
    sentence = "The global shortcut Ctrl+Alt+M is taken by another app"
    assert any(sentence in p for p in shell.shortcuts.problems)
    assert sentence in shell.window.banner.text()
    assert sentence in caplog.text
    assert sentence in shell.shortcuts.sentence  # what Settings' Desktop page shows
    # The other shortcut still works.
    other.press("Control_L", "Alt_L", "space")

    async def started() -> None:
        await until(lambda: shell.controller.status == "connected", "Connected by the key")

    try:
        gui.run(started())
    finally:
        other.close()


def test_the_key_thread_never_calls_qt(qapp: object, x_display: str) -> None:
    """The backend reports on its own thread; ``triggered`` arrives on Qt's."""
    import threading

    from PySide6.QtCore import QCoreApplication, QThread

    shortcuts = GlobalShortcuts({"DISPLAY": x_display})
    seen: list[bool] = []
    shortcuts.triggered.connect(
        lambda _: seen.append(QThread.currentThread() is QCoreApplication.instance().thread()),  # type: ignore[union-attr]
        Qt.ConnectionType.DirectConnection,
    )
    other = XClient(x_display)
    try:
        assert shortcuts.apply({START_END: "Ctrl+Alt+Space"}) == []
        assert any(t.name == "voicedesk-hotkeys" for t in threading.enumerate())
        other.press("Control_L", "Alt_L", "space")
        import time

        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.01)
        assert seen == [True]
    finally:
        shortcuts.stop()
        other.close()
    assert not any(t.name == "voicedesk-hotkeys" for t in threading.enumerate())


def test_holding_the_shortcut_is_one_press(qapp: object, x_display: str) -> None:
    """X repeats a held key (release + press, one timestamp): without care, holding
    Ctrl+Alt+Space would start and end conversations over and over."""
    import time

    from PySide6.QtCore import QCoreApplication

    shortcuts = GlobalShortcuts({"DISPLAY": x_display})
    pressed: list[str] = []
    shortcuts.triggered.connect(pressed.append)
    other = XClient(x_display)

    def pump(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.01)

    try:
        assert shortcuts.apply({START_END: "Ctrl+Alt+Space"}) == []
        other.hold("Control_L", "Alt_L", "space")
        pump(1.2)  # the server's auto-repeat starts after 660 ms, then 25 a second
        other.release()
        pump(0.2)
        assert pressed == [START_END]
        other.press("Control_L", "Alt_L", "space")
        pump(0.3)
        assert pressed == [START_END, START_END]
    finally:
        shortcuts.stop()
        other.close()
