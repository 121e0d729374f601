"""Settings' Desktop page (closing quits or not, the two global shortcuts, whether they
work here) saved and applied, and the window's size, position and mode remembered from
one run to the next (two shells, one settings folder: the test's own)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from PySide6.QtCore import QPoint, QSize
from PySide6.QtGui import QKeySequence

from tests.gui.conftest import Gui, screenshot, until
from tests.gui.desktop import Notifications, XClient, open_shell, xvfb
from voicedesk.config import load_settings, settings_path
from voicedesk.ui.desktop_page import DesktopPage
from voicedesk.ui.settings_dialog import SettingsDialog
from voicedesk.ui.shell import WindowShell
from voicedesk.ui.shortcuts import MUTE, START_END

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]


@pytest.fixture
def x_display() -> Iterator[str]:
    with xvfb() as display:
        yield display


def run_settings(
    shell: WindowShell,
    monkeypatch: pytest.MonkeyPatch,
    edit: Callable[[DesktopPage], None],
    *,
    errors: list[str] | None = None,
) -> None:
    """Open Settings, change the Desktop page with ``edit``, press Save (and Cancel when
    the dialog stays open with an error, which lands in ``errors``)."""
    answers = iter([1, 0])

    def exec_(dialog: SettingsDialog) -> int:
        page = dialog.findChild(DesktopPage)
        assert page is not None
        assert dialog.tabs.tabText(dialog.tabs.indexOf(page)) == "Desktop"
        if dialog.error.text() and errors is not None:
            errors.append(dialog.error.text())
        else:
            edit(page)
        return next(answers)

    monkeypatch.setattr(SettingsDialog, "exec", exec_)
    shell.open_settings()


@pytest.mark.parametrize("compact", [False, True])
def test_the_window_place_and_mode_are_remembered(gui: Gui, compact: bool) -> None:
    first = open_shell(gui, "--demo", "--text-only", settings=load_settings())
    first.window.resize(QSize(640, 500))  # within the offscreen 800x600 screen
    first.window.move(QPoint(40, 30))
    if compact:
        first.tray.compact_action.trigger()  # the tray's Compact mode
        assert first.window.compact
        assert first.tray.compact_action.isChecked()
    size = first.window.size()
    first.window.close()  # no conversation: closing quits, and saves the place
    assert first.closed.is_set()
    gui.run(first.shutdown())
    saved = load_settings()
    assert saved.window_geometry
    assert saved.compact is compact

    second = open_shell(gui, "--demo", "--text-only", settings=load_settings())
    first.window.deleteLater()
    assert second.window.size() == size
    assert second.window.pos() == QPoint(40, 30)
    assert second.window.compact is compact
    assert second.tray.compact_action.isChecked() is compact
    if compact:  # leaving compact mode from the tray
        second.tray.compact_action.trigger()
        assert not second.window.compact
        assert not load_settings().compact


def test_a_damaged_saved_place_is_ignored(gui: Gui, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings()
    settings.window_geometry = "bm90IGEgZ2VvbWV0cnk="  # "not a geometry"
    with caplog.at_level(logging.INFO, logger="voicedesk.ui.shell"):
        shell = open_shell(gui, "--demo", "--text-only", settings=settings)
    assert "saved window geometry does not fit" in caplog.text
    assert shell.window.isVisible()


def test_desktop_settings_are_saved_and_the_new_shortcut_works(
    gui: Gui, x_display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = XClient(x_display)
    shell = open_shell(
        gui, "--demo", "--text-only", notifier=Notifications(), shortcut_env={"DISPLAY": x_display}
    )
    seen: dict[str, object] = {}

    def edit(page: DesktopPage) -> None:
        seen["close_quits"] = page.close_quits.isChecked()
        seen["start_end"] = page.start_end_key.keySequence().toString()
        seen["sentence"] = page.shortcuts_label.text()
        screenshot(page, "settings-desktop")
        page.close_quits.setChecked(True)
        page.start_end_key.setKeySequence(QKeySequence("Ctrl+Alt+J"))
        page.mute_key.clear()

    async def flow() -> None:
        await until(lambda: bool(shell.shortcuts.bindings), "the shortcuts grabbed")
        run_settings(shell, monkeypatch, edit)
        assert seen == {
            "close_quits": False,
            "start_end": "Ctrl+Alt+Space",
            "sentence": "Global shortcuts work on this desktop (X11).",
        }
        saved = load_settings()
        assert saved.close_quits
        assert (saved.shortcut_start_end, saved.shortcut_mute) == ("Ctrl+Alt+J", "")
        assert set(shell.shortcuts.bindings) == {START_END}
        # The old key is let go (another app may take it), the new one starts a call.
        other.grab("Control_L", "Alt_L", "space")
        other.press("Control_L", "Alt_L", "j")
        await until(lambda: shell.controller.status == "connected", "Connected by the new key")
        # "Closing the window quits" now holds during a call.
        shell.window.close()
        assert shell.closed.is_set()

    try:
        gui.run(flow())
    finally:
        other.close()


@pytest.mark.parametrize(
    ("start_end", "mute", "sentence"),
    [
        ("J", "Ctrl+Alt+M", "needs Ctrl, Alt or Meta"),
        ("Ctrl+Alt+K", "Ctrl+Alt+K", "choose two different keys"),
    ],
)
def test_a_shortcut_that_cannot_be_used_is_refused_with_a_sentence(
    gui: Gui, monkeypatch: pytest.MonkeyPatch, start_end: str, mute: str, sentence: str
) -> None:
    shell = open_shell(gui, "--demo", "--text-only")
    errors: list[str] = []

    def edit(page: DesktopPage) -> None:
        page.start_end_key.setKeySequence(QKeySequence(start_end))
        page.mute_key.setKeySequence(QKeySequence(mute))

    run_settings(shell, monkeypatch, edit, errors=errors)
    assert len(errors) == 1
    assert sentence in errors[0]
    assert not settings_path().exists()  # nothing saved
    assert shell.settings.shortcut_start_end == "Ctrl+Alt+Space"


def test_on_wayland_the_desktop_page_and_the_log_say_why_there_are_none(
    gui: Gui, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="voicedesk.ui.shortcuts"):
        shell = open_shell(
            gui,
            "--demo",
            "--text-only",
            system_tray=False,
            shortcut_env={"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"},
        )

        async def shown() -> None:
            await until(lambda: bool(shell.shortcuts.bindings), "the shortcuts read")

        gui.run(shown())
    assert "Global shortcuts are unavailable on Wayland" in caplog.text
    assert not shell.window.banner.isVisible()  # said in Settings and the log, not a banner
    texts: dict[str, str] = {}

    def edit(page: DesktopPage) -> None:
        texts["shortcuts"] = page.shortcuts_label.text()
        label = page.findChild(type(page.shortcuts_label), "trayAvailabilityLabel")
        assert label is not None
        texts["tray"] = label.text()

    run_settings(shell, monkeypatch, edit)
    assert texts["shortcuts"].startswith("Global shortcuts are unavailable on Wayland: it lets")
    assert "closing the window always quits" in texts["tray"]
    assert set(shell.shortcuts.bindings) == {START_END, MUTE}  # kept for an X11 session
