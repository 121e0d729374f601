"""Hands-free standby, microphone taps, cues and push-to-talk on the engine, on the real
(virtual) sound card: PortAudio -> ALSA pulse -> null sinks.

While only listening, what is said into the microphone must reach the taps at 16 kHz
and nothing else; a conversation that starts meanwhile must join the open devices
(no stream reopened) and leave them open when it stops; a chime must be heard; with
push-to-talk the agent must get silence unless the key is held, and 200 ms more after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tests.audio.pulse import SinkRecorder, dominant_hz, play_into, tone
from tests.conftest import scaled
from voicedesk.audio.codec import decode, encode
from voicedesk.audio.cues import CUE_LEVEL, CUE_RATE, conversation_cue, listening_cue
from voicedesk.audio.devices import DeviceInfo, PortAudio
from voicedesk.audio.engine import PTT_TAIL_MS, TAP_RATE, AudioEngine, gate_push_to_talk
from voicedesk.audio.settings import AudioSettings
from voicedesk.localagent import AgentConfig, LocalAgentServer
from voicedesk.protocol.formats import AudioFormat, parse_audio_format
from voicedesk.session import Conversation, ConversationOptions

PCM_16000 = parse_audio_format("pcm_16000")
ULAW_8000 = parse_audio_format("ulaw_8000")
needs_pulse = pytest.mark.usefixtures("pulse")


# --------------------------------------------------------------------------- helpers


class Tap:
    """A microphone tap keeping every frame with the time it came (DSP thread)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, npt.NDArray[np.int16]]] = []
        self.total = 0

    def __call__(self, samples: npt.NDArray[np.int16]) -> None:
        self.frames.append((time.monotonic(), samples))
        self.total += samples.size

    def samples(self, since: float = 0.0) -> npt.NDArray[np.int16]:
        parts = [f for t, f in list(self.frames) if t >= since]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def loud_since(self, since: float, threshold: int = 1000) -> bool:
        return bool(np.abs(self.samples(since)).max(initial=0) > threshold)


class ChunkSink:
    """An :class:`~voicedesk.audio.port.AudioSink` that keeps what it is given."""

    def __init__(self, fmt: AudioFormat = PCM_16000) -> None:
        self.format = fmt
        self.chunks: list[bytes] = []
        self.playback: list[str] = []
        self.notices: list[str] = []

    def on_mic_audio(self, audio: bytes) -> None:
        self.chunks.append(audio)

    def on_playback_started(self) -> None:
        self.playback.append("started")

    def on_playback_stopped(self) -> None:
        self.playback.append("stopped")

    def on_audio_failure(self, message: str) -> None:
        raise AssertionError(f"audio failed: {message}")

    def on_audio_notice(self, message: str) -> None:
        self.notices.append(message)

    def samples(self, start: int = 0, end: int | None = None) -> npt.NDArray[np.int16]:
        return decode(b"".join(self.chunks[start:end]), self.format)


class _TrackedStream:
    def __init__(self, stream: Any, log: StreamLog) -> None:
        self._stream = stream
        self._log = log

    def close(self) -> None:
        self._log.closed.append(self)
        self._stream.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class StreamLog:
    """A ``portaudio_factory`` whose PortAudio sessions record every stream opened and
    closed."""

    def __init__(self) -> None:
        self.opened: list[_TrackedStream] = []
        self.closed: list[_TrackedStream] = []

    def factory(self) -> PortAudio:
        log = self

        class CountingPortAudio(PortAudio):
            def open(
                self,
                device: DeviceInfo,
                *,
                output: bool,
                rate: int,
                frames_per_buffer: int,
                callback: Any,
            ) -> Any:
                stream = _TrackedStream(
                    super().open(
                        device,
                        output=output,
                        rate=rate,
                        frames_per_buffer=frames_per_buffer,
                        callback=callback,
                    ),
                    log,
                )
                log.opened.append(stream)
                return stream

        return CountingPortAudio()

    @property
    def open_streams(self) -> list[_TrackedStream]:
        return [s for s in self.opened if s not in self.closed]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def tap_rate(tap: Tap, seconds: float = 0.6) -> float:
    """Samples per second the tap gets, over ``seconds`` of wall clock."""
    t0, n0 = time.monotonic(), tap.total
    await asyncio.sleep(seconds)
    return (tap.total - n0) / (time.monotonic() - t0)


def quiet_engine(**settings: Any) -> tuple[AudioEngine, StreamLog]:
    """An engine without echo cancellation (a steady test tone would be suppressed as
    noise), counting the streams it opens."""
    log = StreamLog()
    engine = AudioEngine(
        AudioSettings(echo_cancellation=False, **settings), portaudio_factory=log.factory
    )
    return engine, log


# --------------------------------------------------------------------------- no sound card


def test_the_push_to_talk_gate_keeps_exactly_the_tail_across_chunks() -> None:
    tail = TAP_RATE * PTT_TAIL_MS // 1000
    assert tail == 3200
    chunks = [np.full(320, 1000, dtype=np.int16) for _ in range(12)]
    left = tail
    out = []
    for chunk in chunks:
        gated, left = gate_push_to_talk(chunk, left)
        out.append(gated)
    sent = np.concatenate(out)
    assert np.count_nonzero(sent) == tail
    assert sent[:tail].all()
    assert not sent[tail:].any()
    gated, left = gate_push_to_talk(np.full(320, 7, dtype=np.int16), 100)  # ends mid-chunk
    assert np.count_nonzero(gated) == 100
    assert left == 0


@pytest.mark.parametrize("cue", [conversation_cue, listening_cue])
def test_the_cues_are_short_soft_and_click_free(cue: Callable[[], npt.NDArray[np.int16]]) -> None:
    samples = cue()
    assert samples.dtype == np.int16
    assert 0.2 <= samples.size / CUE_RATE <= 0.3
    assert int(np.abs(samples).max()) <= CUE_LEVEL * 32767 + 1
    assert abs(int(samples[0])) < 50
    assert abs(int(samples[-1])) < 50
    steps = np.abs(np.diff(samples.astype(np.int32)))
    assert steps.max() < 0.1 * 32767  # no jump: no click


def test_the_conversation_cue_rises_and_the_listening_cue_falls_lower() -> None:
    def pitches(samples: npt.NDArray[np.int16]) -> tuple[float, float]:
        n = int(0.09 * CUE_RATE)
        return dominant_hz(samples[:n], CUE_RATE), dominant_hz(samples[-2 * n :], CUE_RATE)

    up_first, up_second = pitches(conversation_cue())
    down_first, down_second = pitches(listening_cue())
    assert up_second > up_first
    assert down_second < down_first
    assert down_first < up_first


def test_without_a_speaker_a_cue_is_not_played() -> None:
    AudioEngine().play_cue(conversation_cue(), CUE_RATE)  # nothing open: no error


# --------------------------------------------------------------------------- standby


@needs_pulse
async def test_listening_feeds_the_taps_16_khz_of_the_microphone_and_moves_the_meters() -> None:
    levels: list[float] = []
    engine, log = quiet_engine()
    engine.on_levels = lambda mic, _speaker: levels.append(mic)
    tap = Tap()
    engine.add_mic_tap(tap)
    await engine.listen()
    await engine.listen()  # idempotent
    try:
        assert engine.is_listening
        assert engine.microphone_rate == TAP_RATE
        assert len(log.opened) == 2
        await until(lambda: tap.total > 1600)
        rate = await tap_rate(tap)
        player = play_into(tone(440, 1.0))
        await until(lambda: tap.loud_since(player.started))
        await asyncio.to_thread(player.wait, scaled(10))
        heard = tap.samples(player.started)
    finally:
        await engine.stop_listening()
        await engine.stop_listening()  # safe twice
    assert not engine.is_listening
    assert not log.open_streams
    assert engine.input_device is None
    assert rate == pytest.approx(TAP_RATE, rel=0.15)
    assert all(f.dtype == np.int16 and f.ndim == 1 for _, f in tap.frames)
    assert not tap.frames[-1][1].flags.writeable
    assert np.count_nonzero(np.abs(heard) > 2000) > 0.5 * TAP_RATE  # most of the second
    assert dominant_hz(heard, TAP_RATE) == pytest.approx(440, abs=5)
    assert max(levels) > 0.05


@needs_pulse
async def test_a_conversation_joins_the_open_devices_and_leaves_them_listening(
    speaker: SinkRecorder,
) -> None:
    engine, log = quiet_engine()
    tap = Tap()
    engine.add_mic_tap(tap)
    sink = ChunkSink()
    await engine.listen()
    try:
        streams = list(log.opened)
        assert len(streams) == 2
        await engine.start(input_format=PCM_16000, output_format=PCM_16000, sink=sink)
        assert log.opened == streams  # no stream opened, none closed
        assert not log.closed
        await until(lambda: len(sink.chunks) >= 5)
        before, since = len(sink.chunks), time.monotonic()
        player = play_into(tone(700, 0.8))
        await asyncio.to_thread(player.wait, scaled(10))
        await asyncio.sleep(0.2)
        sent = sink.samples(before)
        assert dominant_hz(sent, 16000) == pytest.approx(700, abs=5)
        assert dominant_hz(tap.samples(since), TAP_RATE) == pytest.approx(700, abs=5)

        # The agent speaks, and the conversation stops mid-sentence: its audio goes.
        engine.play(encode(tone(1000, 3.0, rate=16000), PCM_16000))
        await asyncio.to_thread(speaker.wait_for_sound, scaled(5))
        await until(lambda: "started" in sink.playback)
        await engine.stop()
        stopped_at = time.monotonic()
        assert engine.is_listening
        assert log.opened == streams
        assert not log.closed
        chunks_at_stop, tapped_at_stop = len(sink.chunks), tap.total
        await asyncio.sleep(0.5)
        assert len(sink.chunks) == chunks_at_stop  # nothing to the sink any more
        assert tap.total > tapped_at_stop + 0.3 * TAP_RATE  # the taps still fed
        after_stop = speaker.audio(stopped_at + 0.15, stopped_at + 0.5)
        assert after_stop.size > 0
        assert int(np.abs(after_stop).max()) < 300  # the reply was flushed
    finally:
        await engine.stop_listening()
    assert sorted(map(id, log.closed)) == sorted(map(id, streams))
    assert not log.open_streams
    assert engine.input_device is None


@needs_pulse
async def test_stop_listening_mid_conversation_closes_when_the_conversation_stops() -> None:
    engine, log = quiet_engine()
    sink = ChunkSink()
    await engine.listen()
    try:
        await engine.start(input_format=PCM_16000, output_format=PCM_16000, sink=sink)
        await engine.stop_listening()
        assert not engine.is_listening
        assert not log.closed
        count = len(sink.chunks)
        await until(lambda: len(sink.chunks) > count + 5)  # the conversation goes on
    finally:
        await engine.stop()
    assert len(log.opened) == 2
    assert not log.open_streams
    assert engine.input_device is None


@needs_pulse
async def test_a_conversation_at_another_rate_reopens_and_standby_returns_to_16_khz() -> None:
    engine, log = quiet_engine()
    tap = Tap()
    engine.add_mic_tap(tap)
    sink = ChunkSink(ULAW_8000)
    await engine.listen()
    try:
        await engine.start(input_format=ULAW_8000, output_format=PCM_16000, sink=sink)
        assert engine.microphone_rate == 8000
        assert len(log.opened) == 4
        assert len(log.closed) == 2
        await until(lambda: len(sink.chunks) >= 5)
        assert await tap_rate(tap, 0.4) == pytest.approx(TAP_RATE, rel=0.15)
        assert len(sink.chunks[-1]) == 160  # 20 ms of μ-law
        await engine.stop()
        assert engine.is_listening
        assert engine.microphone_rate == TAP_RATE  # the hotword needs more than 4 kHz
        assert len(log.opened) == 6
        assert len(log.open_streams) == 2
        reopened_total = tap.total
        await until(lambda: tap.total > reopened_total + 1600)
        assert await tap_rate(tap, 0.4) == pytest.approx(TAP_RATE, rel=0.15)
    finally:
        await engine.close()
    assert not log.open_streams


@needs_pulse
async def test_a_microphone_at_48_khz_still_gives_the_taps_16_khz() -> None:
    engine, log = quiet_engine(microphone_rate=48000)
    tap = Tap()
    engine.add_mic_tap(tap)
    sink = ChunkSink()
    await engine.listen()
    try:
        assert engine.microphone_rate == 48000
        await until(lambda: tap.total > 1600)
        rate = await tap_rate(tap)
        player = play_into(tone(440, 0.8))
        await until(lambda: tap.loud_since(player.started))
        await asyncio.to_thread(player.wait, scaled(10))
        heard = tap.samples(player.started)
        # The setting holds for conversations too: the same devices, resampled to the wire.
        await engine.start(input_format=PCM_16000, output_format=PCM_16000, sink=sink)
        assert len(log.opened) == 2
        await until(lambda: len(sink.chunks) >= 5)
        assert len(sink.chunks[-1]) == 640  # 20 ms at 16 kHz
        await engine.stop()
    finally:
        await engine.stop_listening()
    assert rate == pytest.approx(TAP_RATE, rel=0.15)
    assert dominant_hz(heard, TAP_RATE) == pytest.approx(440, abs=5)
    assert not log.open_streams


@needs_pulse
async def test_a_tap_that_raises_is_logged_once_and_removed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def broken(samples: npt.NDArray[np.int16]) -> None:
        calls.append(samples.size)
        raise RuntimeError("detector bug")

    engine, _ = quiet_engine()
    engine.add_mic_tap(broken)
    tap = Tap()
    remove = engine.add_mic_tap(tap)
    caplog.set_level(logging.ERROR, logger="voicedesk.audio.engine")
    await engine.listen()
    try:
        await until(lambda: tap.total > 3200)
        remove()
        remove()  # safe twice
        count = tap.total
        await asyncio.sleep(0.2)
        assert tap.total == count  # removed
    finally:
        await engine.stop_listening()
    assert len(calls) == 1
    assert len([r for r in caplog.records if "tap" in r.getMessage()]) == 1


@needs_pulse
async def test_switching_the_microphone_while_listening_keeps_the_taps_fed() -> None:
    engine, _ = quiet_engine()
    tap = Tap()
    engine.add_mic_tap(tap)
    await engine.listen()
    try:
        old = engine.input_device
        assert old is not None
        other = "pulse" if old.name != "pulse" else "default"
        await engine.switch_devices(input_device=other)
        assert engine.input_device is not None
        assert engine.input_device.name == other
        assert engine.microphone_rate == TAP_RATE
        player = play_into(tone(500, 0.5))
        await until(lambda: tap.loud_since(player.started))
        await asyncio.to_thread(player.wait, scaled(10))
        assert dominant_hz(tap.samples(player.started), TAP_RATE) == pytest.approx(500, abs=8)
    finally:
        await engine.stop_listening()


# --------------------------------------------------------------------------- cues


@needs_pulse
async def test_a_cue_is_heard_while_listening_and_never_counts_as_the_agent(
    speaker: SinkRecorder,
) -> None:
    engine, _ = quiet_engine()
    await engine.listen()
    try:
        engine.play_cue(tone(1200, 0.4, rate=16000), 16000)  # resampled to the speaker's
        start = await asyncio.to_thread(speaker.wait_for_sound, scaled(5))
        await asyncio.sleep(0.5)
        heard = speaker.audio(start + 0.05, start + 0.3)
        # In a conversation, a cue is mixed in and the agent is not "speaking".
        sink = ChunkSink()
        await engine.start(input_format=PCM_16000, output_format=PCM_16000, sink=sink)
        since = time.monotonic()
        engine.play_cue(conversation_cue(), CUE_RATE)
        await asyncio.sleep(0.5)
        chime = speaker.audio(since)
        assert sink.playback == []
        await engine.stop()
    finally:
        await engine.stop_listening()
    assert heard.size > 0.2 * 48000
    assert dominant_hz(heard, 48000) == pytest.approx(1200, abs=10)
    assert int(np.abs(chime).max()) > 0.5 * CUE_LEVEL * 32767


# --------------------------------------------------------------------------- push-to-talk


@needs_pulse
async def test_push_to_talk_sends_silence_unless_held_and_200_ms_after_release() -> None:
    engine, _ = quiet_engine()
    tap = Tap()
    engine.add_mic_tap(tap)
    sink = ChunkSink()
    player = None
    await engine.start(input_format=PCM_16000, output_format=PCM_16000, sink=sink)
    try:
        engine.set_push_to_talk(True)
        assert engine.push_to_talk
        assert not engine.talking
        await until(lambda: len(sink.chunks) >= 5)
        player = play_into(tone(600, 3.0, level=0.1))
        await until(lambda: tap.loud_since(player.started))  # the tone is in the mic
        gated_from = len(sink.chunks)
        await asyncio.sleep(0.4)
        gated = sink.samples(gated_from, len(sink.chunks))

        engine.set_talking(True)
        assert engine.talking
        await asyncio.sleep(0.1)
        held_from = len(sink.chunks)
        await asyncio.sleep(0.4)
        held = sink.samples(held_from, len(sink.chunks))

        released_at = len(sink.chunks)
        engine.set_talking(False)
        assert engine.talking  # the tail runs
        await until(lambda: not engine.talking, timeout=1.0)
        await asyncio.sleep(0.4)
        after = sink.samples(released_at, len(sink.chunks))
        flowing = int(np.flatnonzero(after)[-1]) + 1 if after.any() else 0
    finally:
        await engine.stop()
        if player is not None:
            await asyncio.to_thread(player.wait, scaled(10))
    assert gated.size >= 0.3 * 16000  # chunks kept coming
    assert not gated.any()
    assert np.count_nonzero(np.abs(held) > 1000) > 0.3 * held.size
    assert dominant_hz(held, 16000) == pytest.approx(600, abs=10)
    tail = 16000 * PTT_TAIL_MS // 1000
    chunk = 16000 * 20 // 1000
    print(f"after the release: {flowing} samples flowed ({flowing - tail} besides the tail)")
    # The tail, plus what was already on its way when the key went up (none here).
    assert tail <= flowing <= tail + chunk, flowing
    assert after.size - flowing >= 0.3 * 16000
    assert not after[flowing:].any()


@needs_pulse
async def test_push_to_talk_off_sends_everything() -> None:
    engine, _ = quiet_engine()
    sink = ChunkSink()
    await engine.start(input_format=PCM_16000, output_format=PCM_16000, sink=sink)
    player = None
    try:
        engine.set_push_to_talk(True)
        engine.set_push_to_talk(False)
        assert engine.talking
        await until(lambda: len(sink.chunks) >= 5)
        before = len(sink.chunks)
        player = play_into(tone(650, 0.6))
        await asyncio.to_thread(player.wait, scaled(10))
        await asyncio.sleep(0.2)
        sent = sink.samples(before)
    finally:
        await engine.stop()
        if player is not None:
            await asyncio.to_thread(player.wait, scaled(10))
    assert dominant_hz(sent, 16000) == pytest.approx(650, abs=10)


# --------------------------------------------------------------------------- with a session


@needs_pulse
async def test_a_conversation_started_while_listening_talks_and_ends_back_in_standby() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None, speak_first_message=False))
    await server.start()
    engine, log = quiet_engine()
    tap = Tap()
    engine.add_mic_tap(tap)
    await engine.listen()
    try:
        conversation = Conversation(
            ConversationOptions(server_url=server.http_url, agent_id="demo", text_only=False),
            audio=engine,
        )
        assert await conversation.start()
        assert not conversation.is_text_only
        session = server.sessions[0]
        await session.wait_for(lambda s: s.audio_chunks >= 5, timeout=scaled(5))
        assert len(log.opened) == 2  # the conversation joined the listening devices
        await conversation.end()
        assert engine.is_listening
        assert not log.closed
        count = tap.total
        await until(lambda: tap.total > count + 3200)
    finally:
        await engine.stop_listening()
        await server.stop()
    assert not log.open_streams
