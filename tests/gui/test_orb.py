"""The voice orb and compact mode: the orb follows the agent's state, moves with the
levels and stops its timer when nothing moves; clicking it (or Space / Enter) starts
and ends a conversation with the local demo agent; compact mode keeps only the orb,
the status and mute."""

from __future__ import annotations

import asyncio

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import Gui, until
from voicedesk.ui.orb import VoiceOrb
from voicedesk.ui.window import SHORTCUTS

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]


def test_orb_animates_only_while_something_moves(qapp: QApplication) -> None:
    orb = VoiceOrb()
    orb.resize(200, 200)
    orb.show()
    try:
        assert orb.state == "idle"
        assert not orb.animating, "an idle orb keeps no timer running"
        orb.set_state("speaking")
        assert orb.animating
        before = orb.frames
        QTest.qWait(150)
        assert orb.frames > before + 3, "it draws frames while speaking"
        assert "Speaking" in orb.accessibleDescription()

        # Listening in silence: still once the levels have settled.
        orb.set_state("listening")
        orb.set_levels(0.3, 0.0)
        assert orb.animating, "a level change moves it"
        QTest.qWait(600)
        assert orb.levels[0] > 0.8
        assert not orb.animating, "settled levels stop the timer"
        frames = orb.frames
        QTest.qWait(200)
        assert orb.frames == frames, "no frames while nothing changes"

        orb.set_state("idle")
        orb.set_levels(0.0, 0.0)
        QTest.qWait(600)
        assert not orb.animating
        with pytest.raises(ValueError, match="unknown orb state"):
            orb.set_state("sleeping")
    finally:
        orb.close()
        orb.deleteLater()


def test_orb_is_activated_by_click_space_and_enter(qapp: QApplication) -> None:
    orb = VoiceOrb()
    orb.resize(120, 120)
    orb.show()
    pressed: list[bool] = []
    orb.activated.connect(lambda: pressed.append(True))
    try:
        QTest.mouseClick(orb, Qt.MouseButton.LeftButton, pos=QPoint(60, 60))
        orb.setFocus()
        QTest.keyClick(orb, Qt.Key.Key_Space)
        QTest.keyClick(orb, Qt.Key.Key_Return)
        QTest.keyClick(orb, Qt.Key.Key_A)  # not an activation
        assert len(pressed) == 3
        orb.set_action("End the conversation")
        assert orb.accessibleName() == "Voice orb: end the conversation"
    finally:
        orb.close()
        orb.deleteLater()


def test_orb_starts_thinks_and_ends_a_conversation(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window
    states: list[str] = []

    async def flow() -> None:
        assert w.orb.state == "idle"
        assert w.orb.accessibleName() == "Voice orb: start a conversation"
        QTest.mouseClick(w.orb, Qt.MouseButton.LeftButton, pos=w.orb.rect().center())
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        await until(lambda: w.orb.state == "listening", "the orb listening")
        assert w.orb.accessibleName() == "Voice orb: end the conversation"
        await until(lambda: "What can I help" in w.transcript_view.toPlainText(), "greeting")

        # Between the message and the reply, the orb thinks.
        original = w.orb.set_state

        def record(state: str) -> None:
            states.append(state)
            original(state)

        w.orb.set_state = record  # type: ignore[method-assign]
        w.message_input.setPlainText("hello")
        w.send_message_button.click()
        assert w.orb.state == "thinking"
        await until(lambda: "Agent: Hello!" in w.transcript_view.toPlainText(), "the reply")
        await until(lambda: w.orb.state == "listening", "listening after the reply")
        assert "thinking" in states

        w.orb.setFocus()
        QTest.keyClick(w.orb, Qt.Key.Key_Space)
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")
        assert w.orb.state == "idle"
        await asyncio.sleep(0.7)
        assert not w.orb.animating, "no animation once the conversation is over"

    gui.run(flow())


def test_compact_mode_keeps_the_orb_status_and_mute(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window
    seen: list[bool] = []
    w.compactChanged.connect(seen.append)
    w.activateWindow()
    assert QTest.qWaitForWindowActive(w, 2000)

    async def flow() -> None:
        full = w.size()
        assert not w.compact
        QTest.keySequence(w, SHORTCUTS["compact"])
        await asyncio.sleep(0.05)
        assert w.compact
        assert seen == [True]
        for visible in (w.orb, w.status_label, w.mute_button):
            assert visible.isVisible(), visible.objectName()
        for hidden in (w.transcript_view, w.message_input, w.start_button, w.settings_button):
            assert not hidden.isVisible(), hidden.objectName()
        assert w.width() < full.width()
        w.on_top_button.click()
        assert w.windowFlags() & Qt.WindowType.WindowStaysOnTopHint
        assert w.isVisible()
        # The compact window still starts a conversation from its orb.
        QTest.mouseClick(w.orb, Qt.MouseButton.LeftButton, pos=w.orb.rect().center())
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        w.set_compact(True)  # no change, no signal
        assert seen == [True]

        w.compact_button.click()
        assert not w.compact
        assert seen == [True, False]
        assert not w.windowFlags() & Qt.WindowType.WindowStaysOnTopHint
        assert w.transcript_view.isVisible()
        assert w.message_input.isVisible()
        assert w.width() >= full.width()
        assert w.height() >= full.height()
        w.end_button.click()
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")

    gui.run(flow())


@pytest.mark.usefixtures("pulse")
def test_the_voice_switch_makes_the_next_conversation_text_only(gui: Gui) -> None:
    shell = gui.open("--demo", "--no-aec")
    w = shell.window

    async def flow() -> None:
        assert w.voice_switch.isChecked()
        w.voice_switch.click()
        assert not w.voice_switch.isChecked()
        assert shell.controller.plan.options.text_only
        w.start_button.click()
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        assert not shell.controller.is_voice, "a text conversation: no microphone, no speaker"
        assert not w.voice_switch.isEnabled(), "not during a conversation"
        assert w.orb_caption.text() == "Type a message"
        w.end_button.click()
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")
        w.voice_switch.click()
        assert not shell.controller.plan.options.text_only

    gui.run(flow())


def test_sizes_follow_the_font(qapp: QApplication) -> None:
    small, large = VoiceOrb(), VoiceOrb()
    font = small.font()
    font.setPointSizeF(9)
    small.setFont(font)
    font.setPointSizeF(18)
    large.setFont(font)
    assert large.sizeHint().width() > 1.6 * small.sizeHint().width()
    small.deleteLater()
    large.deleteLater()
