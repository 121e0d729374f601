"""The window's Hands-free switch and push-to-talk, without a sound card (the switch's
real loop with spoken hotwords: test_hands_free_voice.py)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import Gui, screenshot, until
from voicedesk import config
from voicedesk.config import Settings
from voicedesk.launch import SettingsForm, apply_settings_form
from voicedesk.ui.settings_dialog import SettingsDialog


def test_push_to_talk_space_and_the_talk_button(gui: Gui) -> None:
    shell = gui.open("--demo", "--push-to-talk")
    w = shell.window
    launcher = shell.controller.launcher
    assert launcher.push_to_talk

    assert QTest.qWaitForWindowActive(w, 2000)
    assert w.talk_button.isVisible()
    assert w.talk_state.text() == "Hold Space to talk"
    # Space anywhere but the message box: held, it talks; let go, it stops.
    w.start_button.setFocus()
    QTest.keyPress(w.start_button, Qt.Key.Key_Space)
    assert launcher.talking
    assert w.talk_state.text() == "Talking"
    repeat = QKeyEvent(
        QEvent.Type.KeyPress, Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier, " ", True
    )
    QApplication.sendEvent(w.start_button, repeat)
    assert launcher.talking
    screenshot(w, "push-to-talk-talking")
    QTest.keyRelease(w.start_button, Qt.Key.Key_Space)
    assert not launcher.talking
    assert w.talk_state.text() == "Hold Space to talk"
    assert shell.controller.status == "disconnected", "Space did not click the button"
    # In the message box Space types a space.
    w.message_input.setFocus()
    QTest.keyClick(w.message_input, Qt.Key.Key_Space)
    assert not launcher.talking
    assert w.message_input.text() == " "
    # The talk button: pressed and held.
    w.talk_button.pressed.emit()
    assert launcher.talking
    assert w.talk_button.text() == "Talking…"
    w.talk_button.released.emit()
    assert not launcher.talking


def test_without_push_to_talk_there_is_no_talk_button_and_space_is_space(gui: Gui) -> None:
    shell = gui.open("--demo")
    w = shell.window
    assert not w.talk_button.isVisible()
    assert not w.talk_state.isVisible()
    QTest.keyPress(w.transcript_view, Qt.Key.Key_Space)
    assert not shell.controller.launcher.talking
    assert not w.hands_free_switch.isChecked()
    assert w.hands_free_switch.objectName() == "handsFreeSwitch"


def test_hands_free_cannot_run_text_only(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window
    assert not w.hands_free_switch.isEnabled()
    shell.controller.set_hands_free(True)
    assert "cannot run text only" in w.banner.text()
    assert not shell.controller.hands_free


def test_hands_free_waits_for_a_conversation_started_by_hand_to_end(gui: Gui) -> None:
    """The loop would take the devices of a conversation it did not start: the switch
    is off limits until that conversation ends."""
    shell = gui.open("--demo")
    w, c = shell.window, shell.controller

    async def flow() -> None:
        assert w.hands_free_switch.isEnabled()
        w.start_button.click()
        await until(lambda: c.status == "connected", "connected")
        assert not w.hands_free_switch.isEnabled()
        c.set_hands_free(True)  # as a shortcut or a script would
        assert "End the conversation first" in w.banner.text()
        assert not c.hands_free
        assert not config.load_settings().hands_free
        w.end_button.click()
        await until(lambda: c.status == "disconnected", "disconnected")
        assert w.hands_free_switch.isEnabled()

    gui.run(flow(), timeout=30)


def test_settings_carry_push_to_talk_and_the_talk_key(
    gui: Gui, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = gui.open("--demo")
    w = shell.window

    def fill(dialog: SettingsDialog) -> int:
        assert dialog.hotword_page.objectName() == "hotwordPage"
        dialog.push_to_talk.setChecked(True)
        dialog.talk_key.setKeySequence(QKeySequence("F9"))
        dialog.wake_word.setCurrentText("hey_eleven")
        screenshot(dialog, "settings-hotword")
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", fill)
    shell.open_settings()
    saved = config.load_settings()
    assert saved.push_to_talk
    assert saved.talk_key == "F9"
    assert saved.wake_word == "hey_eleven"
    assert shell.controller.talk.enabled
    assert w.talk_state.text() == "Hold F9 to talk"
    QTest.keyPress(w.transcript_view, Qt.Key.Key_F9)
    assert shell.controller.launcher.talking
    QTest.keyRelease(w.transcript_view, Qt.Key.Key_F9)
    assert not shell.controller.launcher.talking


def test_the_settings_form_keeps_hands_free_choices() -> None:
    settings = Settings()
    apply_settings_form(
        SettingsForm(hands_free=True, wake_word=" hey_eleven ", push_to_talk=True, talk_key=""),
        settings,
    )
    again = config.load_settings()
    assert again.hands_free
    assert again.wake_word == "hey_eleven"
    assert again.push_to_talk
    assert again.talk_key == "Space"


def test_settings_choose_webrtc_a_livekit_server_and_the_history_s_retention(
    gui: Gui, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = gui.open("--demo")

    def fill(dialog: SettingsDialog) -> int:
        assert dialog.transport.currentData() == "websocket", "the websocket is the default"
        dialog.transport.setCurrentIndex(dialog.transport.findData("webrtc"))
        dialog.livekit_url.setText("wss://lk.example.com")
        assert dialog.history.isChecked(), "the history is kept unless turned off"
        dialog.history_days.setValue(30)
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", fill)
    shell.open_settings()
    saved = config.load_settings()
    assert (saved.transport, saved.livekit_url) == ("webrtc", "wss://lk.example.com")
    assert shell.controller.plan.options.transport == "webrtc"
    assert (saved.history, saved.history_days) == (True, 30)
    assert shell.controller.plan.history_days == 30

    errors: list[str] = []

    def refuse(dialog: SettingsDialog) -> int:
        if not dialog.error.isHidden():  # the dialog came back with the sentence: cancel
            errors.append(dialog.error.text())
            return 0
        assert dialog.transport.currentData() == "webrtc", "the choice is shown again"
        dialog.livekit_url.setText("ws://lk.example.com")
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", refuse)
    shell.open_settings()
    assert len(errors) == 1
    assert "is not encrypted" in errors[0]
    assert config.load_settings().livekit_url == "wss://lk.example.com"
