"""The audio engine: microphone and speaker through PortAudio, for one conversation.

Threads, and what each may touch:

- PortAudio's callback threads: the speaker callback pulls from
  :class:`PlaybackBuffer` and queues what it played for the echo canceller; the
  microphone callback queues its frames, a chunk's worth at a time. Neither
  blocks, allocates much, or touches asyncio or Qt; they only ``put_nowait`` into
  ``queue.SimpleQueue`` and post state changes with ``loop.call_soon_threadsafe``.
- the DSP thread (``voicedesk-audio-dsp``): echo cancellation, levels, mute,
  resampling and encoding to the wire format; it hands finished chunks to the
  loop with ``call_soon_threadsafe``.
- the event loop's thread: every :class:`~voicedesk.session.AudioPort` method, and
  every call into the :class:`~voicedesk.session.AudioSink`.

Rates: the microphone opens at the wire format's rate where it can, so the sound
server converts (with little delay) and nothing is resampled on the way to the
agent; the echo canceller runs at that rate, and what the speaker played is
converted to it. The speaker opens at 48 kHz where it can (through PulseAudio that
came out ~5 ms faster, to first sound and to silence after a barge-in, than 16 kHz).

Streams are opened and closed in a worker thread (PortAudio calls can take
hundreds of milliseconds), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicedesk.audio.codec import Int16Array, decode, encode, rms
from voicedesk.audio.devices import DeviceInfo, PortAudio
from voicedesk.audio.echo import EchoCanceller, make_echo_canceller
from voicedesk.audio.playback import PlaybackBuffer
from voicedesk.audio.port import AudioSink, AudioStartError, DeviceError
from voicedesk.audio.resample import StreamResampler
from voicedesk.audio.settings import AudioSettings
from voicedesk.protocol.formats import AudioFormat

logger = logging.getLogger(__name__)

FRAME_MS = 10  # the echo canceller's frame
# The speaker's buffer: the device keeps two of them queued, so the first sound of a
# reply and the silence after a barge-in wait behind ~2 of them (through PulseAudio,
# 31 ms at 10 ms buffers, 19 ms at 5 ms; smaller gained nothing more).
SPEAKER_FRAME_MS = 5
FADE_MS = 5  # barge-in fade-out
LEVELS_PER_SECOND = 25
STALL_S = 3.0  # no microphone frames for this long: the device is gone
# The real-time paths (microphone to wire, played audio to the echo canceller) use
# soxr's low-quality filter: the better ones hold back up to 37 ms (158 ms towards
# 8 kHz) of audio in 10 ms steps; this one up to 20 ms, and it is plenty for speech.
REALTIME_QUALITY = "LQ"

# PortAudio's callback status flags (paInputOverflow, paOutputUnderflow).
_INPUT_OVERFLOW = 0x2
_OUTPUT_UNDERFLOW = 0x4

LevelListener = Callable[[float, float], None]


class _Frames:
    """Cuts a stream of samples into fixed-size frames."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pending = np.zeros(0, dtype=np.int16)

    def feed(self, samples: Int16Array) -> list[Int16Array]:
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = data.size - data.size % self.size
        self._pending = data[whole:].copy()
        return [data[i : i + self.size] for i in range(0, whole, self.size)]


@dataclass
class _Pipeline:
    """Everything that lives as long as one pair of open streams."""

    input_device: DeviceInfo
    output_device: DeviceInfo
    input_rate: int
    output_rate: int
    input_stream: Any = None
    output_stream: Any = None


class AudioEngine:
    """An :class:`~voicedesk.session.AudioPort` on real devices (PyAudio, callback mode).

    ``on_levels(input_rms, output_rms)`` (0..1 each) is called on the event loop
    :data:`LEVELS_PER_SECOND` times a second while running, for meters.
    """

    def __init__(
        self,
        settings: AudioSettings | None = None,
        *,
        on_levels: LevelListener | None = None,
        portaudio_factory: Callable[[], PortAudio] = PortAudio,
    ) -> None:
        self.settings = settings or AudioSettings()
        self.on_levels = on_levels
        self._portaudio_factory = portaudio_factory
        self._portaudio: PortAudio | None = None
        self._preparing: asyncio.Future[PortAudio] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: AudioSink | None = None
        self._input_format: AudioFormat | None = None
        self._output_format: AudioFormat | None = None
        self._pipeline: _Pipeline | None = None
        self._playback = PlaybackBuffer(1)
        self._play_resampler: StreamResampler | None = None
        self._mic_queue: queue.SimpleQueue[list[Int16Array] | None] = queue.SimpleQueue()
        # The microphone callback hands frames over a chunk at a time (its buffer is
        # a chunk long; a host API that calls back with less is gathered here), so
        # the DSP thread wakes once per chunk sent.
        self._mic_batch: list[Int16Array] = []
        self._mic_batch_samples = 0
        self._mic_wake_samples = 1
        self._played_queue: queue.SimpleQueue[Int16Array] = queue.SimpleQueue()
        self._dsp: threading.Thread | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._stopped_report: asyncio.TimerHandle | None = None
        self._reconfigure_lock = asyncio.Lock()
        # Written by the loop thread, read by the audio threads (single assignments).
        self._muted = False
        self._volume = 1.0
        self._audible = False
        self._last_mic_frame = 0.0
        self._running = False
        self.echo_canceller_name = "off"
        self.input_level = 0.0
        self.output_level = 0.0
        # Glitches PortAudio reported since start(): the speaker ran dry (a click) or
        # microphone audio was lost. Logged when the call ends.
        self.speaker_underruns = 0
        self.microphone_overflows = 0

    # ------------------------------------------------------------------ AudioPort

    async def prepare(self) -> None:
        """Initialise PortAudio ahead of :meth:`start` (it takes ~0.3 s), e.g. while
        the conversation connects. Safe to call again, also while it runs."""
        if self._portaudio is not None:
            return
        if self._preparing is None:
            self._preparing = asyncio.ensure_future(asyncio.to_thread(self._portaudio_factory))
        preparing = self._preparing
        try:
            portaudio = await asyncio.shield(preparing)
        finally:
            if preparing.done() and self._preparing is preparing:
                self._preparing = None
        if self._portaudio is None:
            self._portaudio = portaudio
        elif self._portaudio is not portaudio:  # pragma: no cover - two racing prepares
            await asyncio.to_thread(portaudio.terminate)

    async def start(
        self, *, input_format: AudioFormat, output_format: AudioFormat, sink: AudioSink
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sink = sink
        self.speaker_underruns = self.microphone_overflows = 0
        self._input_format = input_format
        self._output_format = output_format
        try:
            await self.prepare()
            assert self._portaudio is not None
            self._pipeline = await asyncio.to_thread(
                self._open, self.settings.input_device, self.settings.output_device
            )
        except DeviceError as exc:
            await self._release()
            raise AudioStartError(str(exc)) from None
        except Exception as exc:  # PortAudio failing to initialise, say
            logger.exception("audio could not start")
            await self._release()
            raise AudioStartError(f"The sound system could not be opened ({exc}).") from None
        self._running = True
        self._watchdog = asyncio.ensure_future(self._watch())

    def play(self, audio: bytes) -> None:
        if self._play_resampler is None or self._output_format is None:
            return
        samples = self._play_resampler.process(decode(audio, self._output_format))
        self._playback.push(samples)

    def interrupt(self) -> None:
        self._playback.barge_in()
        if self._play_resampler is not None:
            self._play_resampler.reset()

    def set_muted(self, muted: bool) -> None:
        self._muted = muted

    def set_volume(self, volume: float) -> None:
        self._volume = min(1.0, max(0.0, float(volume)))

    async def stop(self) -> None:
        self._running = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        await self._release()

    # ------------------------------------------------------------------ devices

    @property
    def input_device(self) -> DeviceInfo | None:
        return self._pipeline.input_device if self._pipeline else None

    @property
    def output_device(self) -> DeviceInfo | None:
        return self._pipeline.output_device if self._pipeline else None

    async def switch_devices(
        self, *, input_device: str | int | None = None, output_device: str | int | None = None
    ) -> None:
        """Move to other devices while the conversation goes on. ``None`` keeps the
        current one. Raises :class:`DeviceError` (a sentence) and keeps the old devices
        when the new ones cannot be opened."""
        async with self._reconfigure_lock:
            current = self._pipeline
            if current is None:
                raise DeviceError("Audio is not running.")
            wanted_in = input_device if input_device is not None else current.input_device.index
            wanted_out = output_device if output_device is not None else current.output_device.index
            await asyncio.to_thread(self._close_streams, current)
            try:
                self._pipeline = await asyncio.to_thread(self._open, wanted_in, wanted_out)
            except DeviceError:
                self._pipeline = await asyncio.to_thread(
                    self._open, current.input_device.index, current.output_device.index
                )
                raise

    # ------------------------------------------------------------------ opening

    def _open(self, wanted_input: str | int | None, wanted_output: str | int | None) -> _Pipeline:
        """Open both streams (worker thread). Stops a running DSP thread first."""
        portaudio = self._portaudio
        assert portaudio is not None
        assert self._input_format
        assert self._output_format
        self._stop_dsp()
        out_dev = portaudio.choose(wanted_output, output=True)
        in_dev = portaudio.choose(wanted_input, output=False)
        out_rate = portaudio.supported_rate(
            out_dev, output=True, preferred=self.settings.speaker_rate
        )
        in_rate = portaudio.supported_rate(
            in_dev, output=False, preferred=_canceller_rate(self._input_format)
        )
        pipeline = _Pipeline(in_dev, out_dev, in_rate, out_rate)

        if self._play_resampler is None or self._play_resampler.to_rate != out_rate:
            self._playback = PlaybackBuffer(out_rate * FADE_MS // 1000)
            self._play_resampler = StreamResampler(self._output_format.sample_rate, out_rate)
        canceller, notice = make_echo_canceller(
            in_rate, self.settings.echo_cancellation, self.settings.noise_suppression
        )
        self.echo_canceller_name = canceller.name
        if notice:
            self._post(self._notice, notice)

        self._mic_queue = queue.SimpleQueue()
        self._mic_batch = []
        self._played_queue = queue.SimpleQueue()
        frames_out = out_rate * SPEAKER_FRAME_MS // 1000
        # A chunk cannot leave before its last sample is captured, so the microphone
        # may hand over a chunk at a time: half the wake-ups of 10 ms buffers, and
        # measured no later on the wire.
        frames_in = max(1, in_rate * self.settings.chunk_ms // 1000)
        self._mic_batch_samples = 0
        self._mic_wake_samples = frames_in
        try:
            pipeline.output_stream = portaudio.open(
                out_dev,
                output=True,
                rate=out_rate,
                frames_per_buffer=frames_out,
                callback=self._speaker_callback,
            )
            pipeline.input_stream = portaudio.open(
                in_dev,
                output=False,
                rate=in_rate,
                frames_per_buffer=frames_in,
                callback=self._microphone_callback,
            )
        except DeviceError:
            self._close_streams(pipeline)
            raise
        self._last_mic_frame = time.monotonic() + 2.0  # devices take a moment to start
        self._dsp = threading.Thread(
            target=self._dsp_loop,
            args=(pipeline, canceller, self._mic_queue, self._played_queue),
            name="voicedesk-audio-dsp",
            daemon=True,
        )
        self._dsp.start()
        logger.info(
            "audio: mic %r at %d Hz, speaker %r at %d Hz, echo cancellation %s",
            in_dev.name,
            in_rate,
            out_dev.name,
            out_rate,
            canceller.name,
        )
        return pipeline

    def _close_streams(self, pipeline: _Pipeline) -> None:
        for stream in (pipeline.input_stream, pipeline.output_stream):
            if stream is None:
                continue
            with contextlib.suppress(Exception):
                stream.stop_stream()
            with contextlib.suppress(Exception):
                stream.close()
        pipeline.input_stream = pipeline.output_stream = None
        self._stop_dsp()

    def _stop_dsp(self) -> None:
        if self._dsp is not None:
            self._mic_queue.put_nowait(None)
            self._dsp.join(timeout=2.0)
            self._dsp = None

    async def _release(self) -> None:
        if self._pipeline is not None:
            logger.info(
                "audio: %d speaker underruns, %d microphone overflows",
                self.speaker_underruns,
                self.microphone_overflows,
            )
        pipeline, self._pipeline = self._pipeline, None
        portaudio, self._portaudio = self._portaudio, None

        def close() -> None:
            if pipeline is not None:
                self._close_streams(pipeline)
            self._stop_dsp()
            if portaudio is not None:
                portaudio.terminate()

        await asyncio.to_thread(close)
        # soxr's native state goes with the streams (nanobind reports it as a leak when
        # an engine object outlives the interpreter's shutdown still holding one).
        self._play_resampler = None
        self._playback.clear()
        if self._stopped_report is not None:
            self._stopped_report.cancel()
            self._stopped_report = None
        self._audible = False
        self.input_level = self.output_level = 0.0

    # ------------------------------------------------------------------ PortAudio threads

    def _speaker_callback(
        self, in_data: bytes | None, frame_count: int, time_info: Any, status: int
    ) -> tuple[bytes, int]:
        if status & _OUTPUT_UNDERFLOW:
            self.speaker_underruns += 1
        samples, real = self._playback.pull(frame_count)
        volume = self._volume
        if volume < 1.0:
            samples = (samples.astype(np.float32) * volume).astype(np.int16)
        self._played_queue.put_nowait(samples)
        if real and not self._audible:
            self._audible = True
            self._post(self._playback_started)
        elif not real and self._audible:
            self._audible = False
            self._post(self._playback_drained)
        return samples.tobytes(), 0  # paContinue

    def _microphone_callback(
        self, in_data: bytes | None, frame_count: int, time_info: Any, status: int
    ) -> tuple[None, int]:
        if status & _INPUT_OVERFLOW:
            self.microphone_overflows += 1
        if in_data:
            self._mic_batch.append(np.frombuffer(in_data, dtype=np.int16))
            self._mic_batch_samples += frame_count
            if self._mic_batch_samples >= self._mic_wake_samples:
                self._mic_queue.put_nowait(self._mic_batch)
                self._mic_batch = []
                self._mic_batch_samples = 0
            self._last_mic_frame = time.monotonic()
        return None, 0  # paContinue

    # ------------------------------------------------------------------ DSP thread

    def _dsp_loop(
        self,
        pipeline: _Pipeline,
        canceller: EchoCanceller,
        mic_queue: queue.SimpleQueue[list[Int16Array] | None],
        played_queue: queue.SimpleQueue[Int16Array],
    ) -> None:
        assert self._input_format is not None
        wire = self._input_format
        rate = pipeline.input_rate  # the echo canceller's
        frame = rate * FRAME_MS // 1000
        played_to_canceller = StreamResampler(pipeline.output_rate, rate, REALTIME_QUALITY)
        to_wire = StreamResampler(rate, wire.sample_rate, REALTIME_QUALITY)
        near_frames, far_frames = _Frames(frame), _Frames(frame)
        chunk_samples = max(1, wire.sample_rate * self.settings.chunk_ms // 1000)
        chunk = _Frames(chunk_samples)
        levels_every = max(1, 1000 // LEVELS_PER_SECOND // FRAME_MS)
        # Meters fall by a factor of 0.8 per 10 ms frame; the loop runs once per chunk.
        decay = 0.8 ** (self.settings.chunk_ms / FRAME_MS)
        in_level = out_level = 0.0
        frames_done = 0
        delay_ms = 0
        with contextlib.suppress(Exception):
            delay_ms = round(
                (
                    pipeline.output_stream.get_output_latency()
                    + pipeline.input_stream.get_input_latency()
                )
                * 1000
            )
        while True:
            try:
                captured = mic_queue.get(timeout=0.25)
            except queue.Empty:
                continue
            if captured is None:
                return
            # One pass per chunk: what the speaker played since the last one, then the
            # microphone's frames (numpy and soxr calls cost the same for 5 ms as for
            # 20 ms, so batches, not frames).
            played = _drain(played_queue)
            if played:
                far_samples = played_to_canceller.process(_joined(played))
                for far in far_frames.feed(far_samples):
                    canceller.far_end(far)
                out_level = max(out_level * decay, rms(far_samples))
            else:
                out_level *= decay
            cleaned = [
                canceller.near_end(near, delay_ms) for near in near_frames.feed(_joined(captured))
            ]
            if not cleaned:
                continue
            near_samples = _joined(cleaned)
            in_level = max(in_level * decay, rms(near_samples))
            resampled = to_wire.process(near_samples)
            if self._muted:  # after the resampler, so no filter tail leaks through
                resampled = np.zeros_like(resampled)
            for piece in chunk.feed(resampled):
                self._post(self._deliver_mic_chunk, encode(piece, wire))
            before, frames_done = frames_done, frames_done + len(cleaned)
            if frames_done // levels_every != before // levels_every:
                self.input_level, self.output_level = in_level, out_level
                if self.on_levels is not None:
                    self._post(self.on_levels, in_level, out_level)

    # ------------------------------------------------------------------ back on the loop

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us
            loop.call_soon_threadsafe(callback, *args)

    def _deliver_mic_chunk(self, chunk: bytes) -> None:
        if self._running and self._sink is not None:
            self._sink.on_mic_audio(chunk)

    def _playback_started(self) -> None:
        if self._stopped_report is not None:
            self._stopped_report.cancel()
            self._stopped_report = None
            return  # it never stopped being audible
        if self._running and self._sink is not None:
            self._sink.on_playback_started()

    def _playback_drained(self) -> None:
        # The last samples are still in the device's buffer: report "stopped" when
        # they have been heard.
        latency = 0.0
        pipeline = self._pipeline
        if pipeline is not None and pipeline.output_stream is not None:
            with contextlib.suppress(Exception):
                latency = float(pipeline.output_stream.get_output_latency())
        assert self._loop is not None
        if self._stopped_report is not None:
            self._stopped_report.cancel()
        self._stopped_report = self._loop.call_later(latency, self._playback_stopped)

    def _playback_stopped(self) -> None:
        self._stopped_report = None
        if self._running and self._sink is not None:
            self._sink.on_playback_stopped()

    def _notice(self, message: str) -> None:
        if self._sink is not None:
            self._sink.on_audio_notice(message)

    async def _watch(self) -> None:
        """A device that vanishes stops calling back: reopen the defaults, or give up
        with a sentence."""
        while self._running:
            await asyncio.sleep(0.5)
            pipeline = self._pipeline
            if pipeline is None or self._reconfigure_lock.locked():
                continue
            stalled = time.monotonic() - self._last_mic_frame > STALL_S
            inactive = not _is_active(pipeline.output_stream) or not _is_active(
                pipeline.input_stream
            )
            if not (stalled or inactive):
                continue
            lost = "microphone" if stalled or not _is_active(pipeline.input_stream) else "speaker"
            logger.warning("the %s stopped working; reopening the default devices", lost)
            try:
                async with self._reconfigure_lock:
                    await asyncio.to_thread(self._close_streams, pipeline)
                    self._pipeline = None
                    self._pipeline = await asyncio.to_thread(self._open, None, None)
            except DeviceError as exc:
                logger.warning("no working audio device: %s", exc)
                self._running = False
                await self._release()
                if self._sink is not None:
                    self._sink.on_audio_failure(
                        f"The {lost} stopped working and no other could be opened, so the "
                        "conversation goes on as text."
                    )
                return
            self._notice(
                f"The {lost} stopped working; voicedesk switched to the default devices "
                f"({self._pipeline.input_device.name} / {self._pipeline.output_device.name})."
            )


def _drain(source: queue.SimpleQueue[Int16Array]) -> list[Int16Array]:
    items = []
    with contextlib.suppress(queue.Empty):
        while True:
            items.append(source.get_nowait())
    return items


def _joined(parts: list[Int16Array]) -> Int16Array:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _canceller_rate(wire: AudioFormat) -> int:
    """The microphone rate to ask for: the wire's, unless the echo canceller cannot work
    at it (it takes 10 ms frames, a whole number of samples: not 22.05 kHz)."""
    return wire.sample_rate if wire.sample_rate % 100 == 0 else 48000


def _is_active(stream: Any) -> bool:
    if stream is None:
        return False
    try:
        return bool(stream.is_active())
    except Exception:
        return False
