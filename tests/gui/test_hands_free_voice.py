"""The window's Hands-free switch with real audio: espeak-ng says "hey eleven" into the
null-sink microphone, the window starts a conversation with the demo agent, and listens
again when it ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QProgressBar, QWidget

from tests.audio.pulse import SinkRecorder, play_into
from tests.conftest import scaled
from tests.console.test_handsfree_console import needs_hotword, say, with_silence
from tests.gui.conftest import Gui, screenshot, until
from voicedesk import config
from voicedesk.handsfree import LoopState
from voicedesk.launch import form_from_settings
from voicedesk.ui.settings_dialog import SettingsDialog

pytestmark = [
    pytest.mark.usefixtures("pulse"),
    pytest.mark.gui,
    pytest.mark.timeout(180, method="thread"),
    needs_hotword,
]
LISTENING = "Listening for “Hey Eleven”…"


async def speak(samples: np.ndarray) -> None:  # type: ignore[type-arg]
    player = play_into(samples, 16000)
    await asyncio.to_thread(player.wait, scaled(30))


async def say_hotword(heard: Callable[[], bool], voice: str = "en-us") -> None:
    """Say "hey eleven" until ``heard()``, as a person would repeat it (the detector
    misses about 1 in 10 of espeak-ng's)."""
    for _ in range(3):
        await speak(with_silence(say("hey eleven", voice)))
        with contextlib.suppress(AssertionError):
            await until(heard, "the hotword heard", 4)
            return
    raise AssertionError("'hey eleven' said 3 times, not heard")


def test_the_hands_free_switch_runs_the_loop(gui: Gui) -> None:
    shell = gui.open("--demo")
    w = shell.window
    c = shell.controller

    async def flow() -> None:
        w.hands_free_switch.click()
        assert config.load_settings().hands_free, "the switch is remembered"
        await until(lambda: LISTENING in w.hands_free_status.text(), "listening", 30)
        assert "Nothing leaves this computer" in w.hands_free_status.text()
        assert w.start_button.text() == "Start without the hotword"
        assert c.status == "disconnected"
        screenshot(w, "hands-free-listening")
        await asyncio.sleep(1.0)  # a microphone just opened takes a moment to deliver

        await say_hotword(lambda: c.hands_free_state is not LoopState.LISTENING)
        await until(lambda: w.status_label.text() == "Connected", "Connected", 15)
        assert "Heard “Hey Eleven”" in w.transcript_view.toPlainText()
        assert w.hands_free_status.text() == "In a conversation"
        await until(lambda: "Hi there" in w.transcript_view.toPlainText(), "the greeting", 15)
        engine = c.launcher.engine
        assert engine is not None
        assert engine.is_listening
        w.end_button.click()
        await until(lambda: LISTENING in w.hands_free_status.text(), "listening again", 15)
        assert w.status_label.text() == "Disconnected"
        assert w.hands_free_switch.isChecked()

        # A second hotword, a second conversation; then Start without the hotword.
        await asyncio.sleep(0.8)
        await say_hotword(lambda: c.hands_free_state is not LoopState.LISTENING, voice="en-gb")
        await until(lambda: w.status_label.text() == "Connected", "Connected again", 15)
        w.end_button.click()
        await until(lambda: LISTENING in w.hands_free_status.text(), "listening again", 15)
        w.start_button.click()
        await until(lambda: w.status_label.text() == "Connected", "Connected by Start", 15)
        w.end_button.click()
        await until(lambda: LISTENING in w.hands_free_status.text(), "listening again", 15)
        demo = c.launcher.demo_server
        assert demo is not None
        assert len(demo.sessions) == 3

        # Off: the devices close.
        w.hands_free_switch.click()
        await until(lambda: not c.hands_free, "hands-free off", 10)
        assert not engine.is_listening
        assert w.hands_free_status.text() == ""
        assert w.start_button.text() == "Start conversation"
        assert not config.load_settings().hands_free

    gui.run(flow(), timeout=150)


def test_settings_record_takes_build_and_test_a_hotword(
    gui: Gui, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEDESK_DATA_DIR", str(tmp_path / "data"))
    shell = gui.open("--demo")
    page = shell._hotword_page()
    page.recorder.take_s = 2.5
    dialog = SettingsDialog(form_from_settings(shell.settings), hotword_page=page)
    page.chosen_hotword = dialog.chosen_hotword
    page.built.connect(dialog.add_hotword)
    dialog.tabs.setCurrentWidget(dialog.hotword_page)
    dialog.show()
    assert dialog.findChild(QWidget, "hotwordPage") is dialog.hotword_page
    meter = dialog.findChild(QProgressBar, "hotwordConfidenceMeter")
    assert meter is page.confidence_meter
    speaker = SinkRecorder("speaker")
    levels: list[float] = []

    async def record(index: int, voice: str) -> None:
        page.record_buttons[index].click()
        await until(lambda: page.recorder.recording == index, f"recording take {index + 1}")
        assert page.record_buttons[index].text() == "Stop"
        playing = asyncio.ensure_future(
            speak(with_silence(say("hey computer", voice), before_s=0.2, after_s=0.2))
        )
        while not playing.done():
            levels.append(page.mic_meter.level)
            await asyncio.sleep(0.02)
        await playing
        await until(lambda: page.recorder.recording is None, f"take {index + 1} done", 10)

    async def flow() -> None:
        try:
            await steps()
        finally:
            await page.detach()
        engine = shell.controller.launcher.engine
        assert engine is not None
        assert not engine.is_listening, "the microphone closed with the dialog"

    async def steps() -> None:
        assert not page.build_button.isEnabled()
        for index, voice in enumerate(("en-us", "en-gb", "en-us+f2", "en-us+m3")):
            await record(index, voice)
            assert page.record_buttons[index].text() == "Redo"
            assert page.take_labels[index].text().endswith(" s")
        assert max(levels) > 0.01, "the meter followed the microphone"
        await record(1, "en-gb-scotland")  # a redo
        page.name_input.setText("hey computer")
        assert page.build_button.isEnabled()
        # Playback of a take: it comes out of the speaker.
        since = time.monotonic()
        page.play_buttons[0].click()
        await until(lambda: bool(speaker.loud_block_times(1000, since)), "the take played", 5)

        page.build_button.click()
        await until(lambda: "Saved “hey_computer”" in page.status.text(), "the build", 60)
        assert (tmp_path / "data" / "hotwords" / "hey_computer.json").is_file()
        assert dialog.chosen_hotword() == "hey_computer"

        # The live test: the confidence meter rises when the hotword is said.
        page.test_button.click()
        await until(lambda: page.tester.running, "the test running")
        assert page.test_button.text() == "Stop test"
        await asyncio.sleep(0.8)
        peak = 0

        def watch() -> bool:
            nonlocal peak
            peak = max(peak, meter.value())
            return page.tester.heard is not None

        await speak(with_silence(say("hey computer", "en-us+f4"), after_s=1.0))
        await until(watch, "the hotword heard in the test", 10)
        assert peak > 55, "the meter followed the scores"
        assert page.tester.heard is not None
        assert page.tester.heard >= 0.7
        assert "Heard it" in page.status.text()
        screenshot(dialog, "settings-hotword-recorder")

    try:
        gui.run(flow(), timeout=150)
    finally:
        speaker.stop()
        dialog.deleteLater()
