"""The audio engine on a real (virtual) sound card: PortAudio -> ALSA pulse -> null sinks.

What the agent sends must come out of the speaker at the right pitch, what is said
into the microphone must reach the agent in its format, and barge-in, mute, device
switching and echo cancellation must do what a user would hear.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio.pulse import (
    SinkRecorder,
    dominant_hz,
    energy_db,
    play_into,
    start_sound_server,
    tone,
)
from tests.conftest import scaled
from tests.session.helpers import Recorder
from voicedesk.audio.codec import decode
from voicedesk.audio.engine import AudioEngine
from voicedesk.audio.settings import AudioSettings
from voicedesk.localagent import AgentConfig, LocalAgentServer, VoiceKind
from voicedesk.localagent.server import AgentSession
from voicedesk.localagent.voice import synthesize
from voicedesk.protocol.events import AgentResponse, Interruption
from voicedesk.protocol.formats import ALL_FORMATS, parse_audio_format
from voicedesk.protocol.machine import Mode, ModeChanged
from voicedesk.session import AudioUnavailable, Conversation, ConversationOptions

pytestmark = pytest.mark.usefixtures("pulse")


@contextlib.asynccontextmanager
async def voice_call(
    aec: bool = False, **agent: Any
) -> AsyncIterator[tuple[Conversation, Recorder, AudioEngine, AgentSession]]:
    agent.setdefault("ping_interval_s", None)
    server = LocalAgentServer(AgentConfig(**agent))
    await server.start()
    engine = AudioEngine(AudioSettings(echo_cancellation=aec))
    conversation = Conversation(
        ConversationOptions(server_url=server.http_url, agent_id="demo", text_only=False),
        audio=engine,
    )
    recorder = Recorder(conversation)
    try:
        assert await conversation.start()
        assert not conversation.is_text_only
        yield conversation, recorder, engine, server.sessions[0]
    finally:
        await conversation.end()
        await server.stop()


@pytest.mark.parametrize("fmt", [f.name for f in ALL_FORMATS])
async def test_the_agent_is_heard_at_the_right_pitch_in_every_format(
    fmt: str, speaker: SinkRecorder
) -> None:
    async with voice_call(agent_output_audio_format=fmt, voice=VoiceKind.SINE) as (_, rec, _e, _s):
        start = await asyncio.to_thread(speaker.wait_for_sound, scaled(6))
        await asyncio.sleep(0.8)
        heard = speaker.audio(start + 0.1, start + 0.6)
        await rec.wait_for(ModeChanged, lambda e: e.mode is Mode.SPEAKING)
    assert heard.size > 20000
    assert dominant_hz(heard, 48000) == pytest.approx(1000, abs=10)


@pytest.mark.parametrize("fmt", [f.name for f in ALL_FORMATS])
async def test_the_microphone_reaches_the_agent_in_its_format(fmt: str) -> None:
    async with voice_call(user_input_audio_format=fmt, speak_first_message=False) as call:
        session = call[3]
        await session.wait_for(lambda s: s.audio_chunks >= 5, timeout=scaled(5))
        before = len(session.audio_in)
        player = play_into(tone(700, 1.0))
        await asyncio.to_thread(player.wait, scaled(10))
        await asyncio.sleep(0.3)
        sent = decode(bytes(session.audio_in[before:]), parse_audio_format(fmt))
    rate = parse_audio_format(fmt).sample_rate
    loud = sent[np.abs(sent) > 2000]
    assert loud.size > 0.5 * rate  # most of the second arrived
    assert dominant_hz(sent, rate) == pytest.approx(700, abs=10)


async def test_barge_in_silences_the_speaker_at_once(speaker: SinkRecorder) -> None:
    interrupted_at: list[float] = []
    async with voice_call(voice=VoiceKind.SINE, speak_first_message=False) as call:
        conversation, rec, _, session = call
        conversation.add_listener(
            lambda e: (
                interrupted_at.append(time.monotonic()) if isinstance(e, Interruption) else None
            )
        )
        await session.say("a long answer " * 30)  # about 8 s of tone
        await asyncio.to_thread(speaker.wait_for_sound, scaled(6))
        await asyncio.sleep(0.5)
        player = play_into(tone(500, 0.3))  # the user talks over the agent
        await rec.wait_for(Interruption, timeout=5)
        await asyncio.to_thread(player.wait, 5)
        await rec.wait_for(ModeChanged, lambda e: e.mode is Mode.LISTENING)
        await asyncio.sleep(0.4)
    after = [t for t in speaker.loud_block_times() if t > interrupted_at[0]]
    residual_ms = (max(after) - interrupted_at[0]) * 1000 if after else 0.0
    assert residual_ms < 100, f"agent still heard {residual_ms:.0f} ms after the interruption"
    quiet = speaker.audio(interrupted_at[0] + 0.15, interrupted_at[0] + 0.6)
    assert int(np.abs(quiet).max()) < 300  # silence, not a quieter tone


async def test_mute_sends_silence_and_unmute_sends_the_voice_again() -> None:
    async with voice_call(speak_first_message=False) as call:
        conversation, _, _, session = call
        await session.wait_for(lambda s: s.audio_chunks >= 5, timeout=scaled(5))
        start = len(session.audio_in)
        player = play_into(tone(600, 4.0, level=0.1))
        fmt = session.input_format
        await session.wait_for(  # the tone is arriving
            lambda s: np.abs(decode(bytes(s.audio_in[start:]), fmt)).max(initial=0) > 1000,
            timeout=scaled(5),
        )
        conversation.set_mic_muted(True)
        await asyncio.sleep(0.1)
        muted_from = len(session.audio_in)
        await asyncio.sleep(0.8)
        muted_to = len(session.audio_in)
        conversation.set_mic_muted(False)
        await asyncio.sleep(0.2)
        unmuted_from = len(session.audio_in)
        await asyncio.sleep(0.5)
        unmuted_to = len(session.audio_in)
        await asyncio.to_thread(player.wait, 10)
    muted = decode(bytes(session.audio_in[muted_from:muted_to]), fmt)
    unmuted = decode(bytes(session.audio_in[unmuted_from:unmuted_to]), fmt)
    assert muted.size >= 0.7 * fmt.sample_rate  # chunks kept coming (as the reference client)
    assert not muted.any()
    assert dominant_hz(unmuted, fmt.sample_rate) == pytest.approx(600, abs=10)


async def test_switching_the_speaker_mid_call_keeps_audio_flowing(speaker: SinkRecorder) -> None:
    async with voice_call(voice=VoiceKind.SINE, speak_first_message=False) as call:
        conversation, _, engine, session = call
        await session.say("a long answer " * 30)
        await asyncio.to_thread(speaker.wait_for_sound, scaled(6))
        await session.wait_for(lambda s: s.audio_chunks >= 5, timeout=scaled(5))
        old = engine.output_device
        assert old is not None
        other = "pulse" if old.name != "pulse" else "default"
        chunks_before = session.audio_chunks
        await engine.switch_devices(output_device=other)
        switched_at = time.monotonic()
        await asyncio.sleep(1.5)
        assert engine.output_device is not None
        assert engine.output_device.name == other
        assert conversation.status.value == "connected"
        await session.wait_for(  # the microphone streams again
            lambda s: s.audio_chunks > chunks_before + 20, timeout=scaled(5)
        )
    heard_after = speaker.audio(switched_at + 0.5, switched_at + 1.5)
    assert dominant_hz(heard_after, 48000) == pytest.approx(1000, abs=10)


async def test_switching_the_microphone_mid_call_keeps_the_voice_flowing() -> None:
    async with voice_call(speak_first_message=False) as call:
        conversation, _, engine, session = call
        await session.wait_for(lambda s: s.audio_chunks >= 5, timeout=scaled(5))
        old = engine.input_device
        assert old is not None
        other = "pulse" if old.name != "pulse" else "default"
        await engine.switch_devices(input_device=other)
        assert engine.input_device is not None
        assert engine.input_device.name == other
        await asyncio.sleep(0.5)  # the new stream starts
        before = len(session.audio_in)
        player = play_into(tone(700, 1.0))
        await asyncio.to_thread(player.wait, scaled(10))
        await asyncio.sleep(0.3)
        sent = decode(bytes(session.audio_in[before:]), session.input_format)
        assert conversation.status.value == "connected"
    assert dominant_hz(sent, session.input_format.sample_rate) == pytest.approx(700, abs=10)


def pactl(*args: str) -> str:
    return subprocess.run(
        ["pactl", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


async def test_echo_is_cancelled_and_the_users_voice_is_kept() -> None:
    """A room: the speaker sink is looped back into the microphone sink."""
    loopback = pactl(
        "load-module",
        "module-loopback",
        "source=speaker.monitor",
        "sink=micsink",
        "latency_msec=40",
    )
    microphone = SinkRecorder("micsink")  # what the microphone picks up, before processing
    try:
        async with voice_call(aec=True, voice=VoiceKind.ESPEAK, speak_first_message=False) as call:
            _, rec, _, session = call
            await session.say(
                "This is the agent talking through the laptop speakers. Without echo "
                "cancellation the microphone would pick all of this up and send it back, "
                "and the agent would start answering itself. " * 2
            )
            await rec.wait_for(ModeChanged, lambda e: e.mode is Mode.SPEAKING, timeout=10)
            await asyncio.sleep(2.0)  # the canceller adapts to the room
            echo_from, echo_t0 = len(session.audio_in), time.monotonic()
            await rec.wait_for(ModeChanged, lambda e: e.mode is Mode.LISTENING, timeout=30)
            echo_to, echo_t1 = len(session.audio_in), time.monotonic()
            await asyncio.sleep(0.5)
            voice = await synthesize(
                "Hello agent, can you hear me now? I would like to know the time.",
                48000,
                VoiceKind.ESPEAK,
            )
            voice_from, voice_t0 = len(session.audio_in), time.monotonic()
            await asyncio.to_thread(play_into(voice).wait, 15)
            await asyncio.sleep(0.2)
            voice_to, voice_t1 = len(session.audio_in), time.monotonic()
        fmt = session.input_format
        echo_sent = decode(bytes(session.audio_in[echo_from:echo_to]), fmt)
        voice_sent = decode(bytes(session.audio_in[voice_from:voice_to]), fmt)
        echo_raw = microphone.audio(echo_t0, echo_t1)
        voice_raw = microphone.audio(voice_t0, voice_t1)
    finally:
        microphone.stop()
        pactl("unload-module", loopback)
    erle = energy_db(echo_raw) - energy_db(echo_sent)
    voice_kept = energy_db(voice_sent) - energy_db(voice_raw)
    print(f"ERLE {erle:.1f} dB, voice level change {voice_kept:+.1f} dB")
    assert energy_db(echo_raw) > -40  # the room really echoed
    assert erle >= 20
    assert voice_kept > -10
    assert session.interruptions == []  # the agent never heard itself


def test_no_usable_sound_system_means_text_with_a_sentence(tmp_path: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicedesk", "console", "--demo"],
        input="hello\n/quit\n",
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env={**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/nowhere"},
    )
    assert result.returncode == 0, result.stderr
    assert "[audio] " in result.stdout
    assert "The conversation goes on as text." in result.stdout
    assert "Agent: Hello!" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


async def test_the_sound_system_dying_mid_call_leaves_a_text_conversation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sound server (or a USB headset) that goes away: the devices stop calling back;
    the engine cannot reopen any, says so, and the conversation goes on as text.

    The server killed is a second one started for this test, so the other tests' sound
    card keeps its state."""
    runtime = Path(f"/tmp/voicedesk-pulse-doomed-{os.getpid()}")
    for key, value in (await asyncio.to_thread(start_sound_server, runtime)).items():
        monkeypatch.setenv(key, value)
    pid = int((runtime / "pid").read_text().split()[0])
    try:
        async with voice_call(speak_first_message=False) as call:
            conversation, rec, engine, session = call
            await session.wait_for(lambda s: s.audio_chunks >= 5, timeout=scaled(5))
            os.kill(pid, signal.SIGKILL)
            unavailable = await rec.wait_for(AudioUnavailable, timeout=15)
            assert "goes on as text" in unavailable.message
            assert conversation.status.value == "connected"
            assert conversation.is_text_only
            assert engine.input_device is None  # the streams are closed, the devices free
            assert conversation.send_user_message("hello")
            await rec.wait_for(AgentResponse, lambda e: e.text.startswith("Hello"), timeout=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(runtime, ignore_errors=True)
