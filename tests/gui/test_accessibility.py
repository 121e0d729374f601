"""Accessible and themed: every control is named and described, a new agent reply is
announced to screen readers, the whole flow works from the keyboard alone, and both
themes meet WCAG AA contrast (computed from the palettes the window draws with)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QApplication,
    QComboBox,
    QPlainTextEdit,
    QWidget,
)

from tests.gui.conftest import Gui, until
from voicedesk.config import Settings
from voicedesk.ui import theme
from voicedesk.ui.window import SHORTCUTS

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]


@pytest.mark.parametrize("palette", [theme.LIGHT, theme.DARK], ids=lambda p: p.name)
def test_every_text_colour_meets_wcag_aa(palette: theme.Palette) -> None:
    pairs = theme.text_pairs(palette)
    assert len(pairs) >= 12
    weak = [
        (what, round(theme.contrast(fg, bg), 2))
        for what, fg, bg in pairs
        if theme.contrast(fg, bg) < theme.AA_CONTRAST
    ]
    assert not weak, f"{palette.name}: below 4.5:1: {weak}"


def test_contrast_is_the_wcag_formula() -> None:
    assert theme.contrast("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert theme.contrast("#777777", "#FFFFFF") == pytest.approx(4.48, abs=0.01)
    assert theme.contrast("#FFFFFF", "#FFFFFF") == pytest.approx(1.0)


def _controls(root: QWidget) -> list[QWidget]:
    kinds = (QAbstractButton, QAbstractSlider, QComboBox, QPlainTextEdit)
    found: list[QWidget] = [root.orb] if hasattr(root, "orb") else []
    for kind in kinds:
        found += [w for w in root.findChildren(kind) if w.isVisibleTo(root)]
    return found


def test_every_control_has_a_name_and_a_description(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window
    w.devices_button.click()  # the devices too
    unnamed = [
        f"{c.metaObject().className()} {c.objectName()!r}"
        for c in _controls(w)
        if not c.accessibleName() or not c.accessibleDescription()
    ]
    assert not unnamed, f"controls without an accessible name or description: {unnamed}"


def test_the_whole_flow_by_keyboard_alone_and_replies_are_announced(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window
    w.activateWindow()
    assert QTest.qWaitForWindowActive(w, 2000)
    announced: list[str] = []
    w.announced.connect(announced.append)

    async def flow() -> None:
        # Focus the orb and press Space: the conversation starts.
        QTest.keySequence(w, SHORTCUTS["orb"])
        assert QApplication.focusWidget() is w.orb
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Space)
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        await until(lambda: bool(announced), "the greeting announced")
        assert announced[0].startswith("The agent said: Hi there")

        # Tab from the orb reaches the controls beside it; the message box by its key.
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        assert QApplication.focusWidget() is not w.orb
        QTest.keySequence(w, SHORTCUTS["message"])
        assert QApplication.focusWidget() is w.message_input
        QTest.keyClicks(w.message_input, "hello")
        QTest.keyClick(w.message_input, Qt.Key.Key_Return)
        await until(lambda: "Agent: Hello!" in w.transcript_view.toPlainText(), "the reply")
        await until(lambda: len(announced) == 2, "the reply announced")
        assert announced[1].startswith("The agent said: Hello!")

        # Rate it from the keyboard: Tab to the thumbs, Space.
        await until(lambda: w.feedback_row.isVisible(), "the rating")
        for _ in range(60):
            if QApplication.focusWidget() is w.like_button:
                break
            QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        assert QApplication.focusWidget() is w.like_button, "Tab reaches the thumbs"
        QTest.keyClick(w.like_button, Qt.Key.Key_Space)
        await until(lambda: w.like_button.isChecked(), "liked")

        # End from the orb again.
        QTest.keySequence(w, SHORTCUTS["orb"])
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Return)
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")
        assert len(announced) == 2, "each reply announced once"

    gui.run(flow())


def test_themes_switch_and_follow_the_system(gui: Gui) -> None:
    hints = QGuiApplication.styleHints()
    shell = gui.open("--demo", "--text-only", settings=Settings(theme="dark"))
    w = shell.window
    try:
        assert w.theme_choice == "dark"
        assert w.palette_in_use is theme.DARK
        window_bg = w.palette().color(QPalette.ColorRole.Window).name().upper()
        assert window_bg == theme.DARK.window
        w.set_theme("light")
        assert w.palette().color(QPalette.ColorRole.Window).name().upper() == theme.LIGHT.window
        # "system": the platform's scheme, and a change of it (where the platform lets an
        # application ask for a scheme: not Qt's offscreen platform).
        w.set_theme("system")
        hints.setColorScheme(Qt.ColorScheme.Dark)
        QTest.qWait(50)
        if hints.colorScheme() != Qt.ColorScheme.Dark:
            assert w.palette_in_use is theme.LIGHT, "an unknown scheme is light"
            pytest.skip("this platform does not report a colour scheme")
        assert w.palette_in_use is theme.DARK
        hints.setColorScheme(Qt.ColorScheme.Light)
        QTest.qWait(50)
        assert w.palette_in_use is theme.LIGHT
        w.set_theme("light")
        hints.setColorScheme(Qt.ColorScheme.Dark)
        QTest.qWait(50)
        assert w.palette_in_use is theme.LIGHT, "a chosen theme stays"
    finally:
        hints.unsetColorScheme()
