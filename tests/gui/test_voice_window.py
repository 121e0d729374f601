"""The window with real audio (PulseAudio null sinks): the speaking indicator follows what
is audible, the meters move, mute and device pickers act on the running call. The local
agent sends only a default agent's events (no vad_score, no chat parts): the indicator,
the meters and the transcript work from the audio and the agent's final texts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tests.audio.pulse import SinkRecorder, energy_db
from tests.gui.conftest import Gui, screenshot, until
from voicedesk.localagent.server import frame_observers

pytestmark = [
    pytest.mark.usefixtures("pulse"),
    pytest.mark.gui,
    pytest.mark.timeout(120, method="thread"),
]


def test_voice_flow_indicator_meters_mute_and_devices(gui: Gui) -> None:
    shell = gui.open("--demo", "--no-aec")
    w = shell.window
    speaker = SinkRecorder("speaker")
    output_peaks: list[float] = []
    shell.controller.levelsChanged.connect(lambda _i, o: output_peaks.append(o))
    sent: list[str] = []

    def observe(direction: str, message: object) -> None:
        if direction == "server" and isinstance(message, dict):
            sent.append(str(message.get("type")))

    frame_observers.append(observe)

    async def flow() -> None:
        await until(lambda: w.output_combo.count() > 1, "the speaker list")
        names = [w.output_combo.itemText(i) for i in range(w.output_combo.count())]
        assert "System default" in names
        assert any("pulse" in n or "default" in n for n in names)

        w.start_button.click()
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        # The greeting is heard: the indicator says so and animates, then goes back.
        await until(lambda: w.speaking.text() == "Agent speaking", "Agent speaking", 15)
        assert w.speaking.animating
        assert w.speaking.accessibleName() == "Agent speaking"
        await until(lambda: w.output_meter.level > 0.01, "the speaker meter to move")
        screenshot(w, "connected-speaking")
        await until(lambda: w.speaking.text() == "Agent listening", "Agent listening", 60)
        assert not w.speaking.animating
        assert max(output_peaks) > 0.01
        assert "Agent: Hi there" in w.transcript_view.toPlainText()
        assert "audio" in sent
        assert not {"vad_score", "agent_chat_response_part", "agent_tool_response"} & set(sent)

        # Mute from the button: the agent receives exact silence.
        session = shell.controller.launcher.demo_server.sessions[-1]  # type: ignore[union-attr]
        w.mute_button.click()
        assert shell.controller.conversation.is_mic_muted  # type: ignore[union-attr]
        await asyncio.sleep(0.2)  # chunks already on their way when the button was pressed
        start = len(session.audio_in)
        await session.wait_for(lambda s: len(s.audio_in) > start + 6400)
        assert not any(session.audio_in[start:])
        w.mute_button.click()
        assert not shell.controller.conversation.is_mic_muted  # type: ignore[union-attr]

        # Choosing another speaker moves the running call (PortAudio sees the sound
        # server as two devices, "pulse" and "default").
        engine = shell.controller.launcher.engine
        assert engine is not None
        assert engine.output_device is not None
        other = "pulse" if engine.output_device.name != "pulse" else "default"
        at = w.output_combo.findText(other)
        w.output_combo.setCurrentIndex(at)
        w.output_combo.activated.emit(at)
        await until(
            lambda: engine.output_device is not None and engine.output_device.name == other,
            f"the switch to {other}",
        )
        assert shell.settings.output_device == other
        assert w.status_label.text() == "Connected"
        w.end_button.click()
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")
        assert w.output_meter.level == 0.0

    try:
        gui.run(flow(), timeout=120)
    finally:
        speaker.stop()
        frame_observers.remove(observe)
    assert energy_db(speaker.audio()) > -50, "the greeting came out of the speaker sink"


def test_self_test_command_passes_with_voice() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicedesk", "--self-test"],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "voicedesk self-test passed" in result.stdout
    assert "voice through" in result.stdout
