"""Settings for the redesigned window: the microphone test (a live meter of what the
microphone hears), the speaker test (a chime that comes out of the speaker), and the
theme (previewed at once, saved with Save, put back by Cancel). The devices are the
private PulseAudio null sinks: a tone played into ``micsink`` is the microphone, the
``speaker`` sink is recorded."""

from __future__ import annotations

import pytest
from PySide6.QtTest import QTest

from tests.audio.pulse import RATE, SinkRecorder, dominant_hz, energy_db, play_into, tone
from tests.gui.conftest import Gui
from voicedesk import config
from voicedesk.launch import form_from_settings
from voicedesk.ui import theme
from voicedesk.ui.settings_dialog import SettingsDialog

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]


@pytest.mark.usefixtures("pulse")
def test_microphone_meter_and_speaker_chime(gui: Gui) -> None:
    dialog = SettingsDialog(form_from_settings(config.Settings()))
    dialog.show()
    speaker = SinkRecorder("speaker")
    player = None
    try:
        assert dialog.mic_meter.level == 0.0
        player = play_into(tone(440.0, 4.0))
        dialog.mic_test.click()
        assert dialog.device_check.mic_running
        assert dialog.mic_test.text() == "Stop"
        for _ in range(200):
            QTest.qWait(20)
            if dialog.mic_meter.level > 0.05:
                break
        assert dialog.mic_meter.level > 0.05, "the meter shows the tone the microphone hears"
        dialog.mic_test.click()
        assert not dialog.device_check.mic_running
        assert dialog.mic_meter.level == 0.0

        finished: list[bool] = []
        dialog.device_check.chimeFinished.connect(lambda: finished.append(True))
        dialog.speaker_test.click()
        for _ in range(250):
            QTest.qWait(20)
            if finished:
                break
        assert finished, "the chime finished"
        assert dialog.device_note.text() == "The chime played. Did you hear it?"
        QTest.qWait(300)
        heard = speaker.audio()
        assert energy_db(heard) > -50, "the chime came out of the speaker"
        hz = dominant_hz(heard, RATE)
        assert min(abs(hz - 880.0), abs(hz - 1318.5)) < 60, f"the chime's tones, not {hz} Hz"
    finally:
        speaker.stop()
        if player is not None:
            player.wait(10)
        dialog.reject()
        dialog.deleteLater()
    assert not dialog.device_check.mic_running, "closing the dialog stops the test"


def test_a_missing_microphone_is_a_sentence(gui: Gui) -> None:
    dialog = SettingsDialog(form_from_settings(config.Settings()), inputs=["no such mic"])
    dialog.input_device.setCurrentIndex(dialog.input_device.findData("no such mic"))
    try:
        dialog.mic_test.click()
        assert not dialog.device_check.mic_running
        assert not dialog.mic_test.isChecked()
        assert dialog.device_note.text().startswith("The microphone test could not start:")
    finally:
        dialog.reject()
        dialog.deleteLater()


def test_the_theme_previews_saves_and_cancels(gui: Gui, monkeypatch: pytest.MonkeyPatch) -> None:
    shell = gui.open("--demo", "--text-only", settings=config.Settings(theme="light"))
    w = shell.window
    assert w.palette_in_use is theme.LIGHT

    def cancel(dialog: SettingsDialog) -> int:
        dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
        assert w.palette_in_use is theme.DARK, "the window previews the choice"
        dialog.reject()
        return 0

    monkeypatch.setattr(SettingsDialog, "exec", cancel)
    shell.open_settings()
    assert w.palette_in_use is theme.LIGHT, "Cancel puts the old theme back"
    assert shell.settings.theme == "light"

    def save(dialog: SettingsDialog) -> int:
        dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", save)
    shell.open_settings()
    assert shell.settings.theme == "dark"
    assert config.load_settings().theme == "dark"
    assert w.palette_in_use is theme.DARK
