"""The audio engine: microphone and speaker through PortAudio, for conversations and
for listening between them.

Two ways to have the devices open, which may overlap:

- a conversation (:meth:`AudioEngine.start` .. :meth:`AudioEngine.stop`): the
  microphone goes to the conversation's sink, the agent's audio to the speaker;
- standby (:meth:`AudioEngine.listen` .. :meth:`AudioEngine.stop_listening`): the
  microphone goes to the taps only (a hotword detector), nothing to any sink. A
  conversation that starts while listening joins the open devices when the
  microphone already runs at its rate, and leaves them open when it stops.

The microphone taps (:meth:`AudioEngine.add_mic_tap`) get every echo-cancelled chunk
at :data:`TAP_RATE` in both, before mute and push-to-talk.

Threads, and what each may touch:

- PortAudio's callback threads: the speaker callback pulls from
  :class:`PlaybackBuffer` (the agent's audio, mixed with any cue) and queues what it
  played for the echo canceller; the microphone callback queues its frames, a chunk's
  worth at a time. Neither blocks, allocates much, or touches asyncio or Qt; they only
  ``put_nowait`` into ``queue.SimpleQueue`` and post state changes with
  ``loop.call_soon_threadsafe``.
- the DSP thread (``voicedesk-audio-dsp``): echo cancellation, levels, the taps,
  mute and push-to-talk, resampling and encoding to the wire format; it hands
  finished chunks to the loop with ``call_soon_threadsafe``.
- the event loop's thread: every :class:`~voicedesk.session.AudioPort` method, the
  standby and push-to-talk methods, and every call into the
  :class:`~voicedesk.session.AudioSink`.

Rates: the microphone opens at the wire format's rate where it can (16 kHz while only
listening), so the sound server converts (with little delay) and nothing is resampled
on the way to the agent; the echo canceller runs at that rate, and what the speaker
played is converted to it. The speaker opens at 48 kHz where it can (through
PulseAudio that came out ~5 ms faster, to first sound and to silence after a
barge-in, than 16 kHz).

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
#: Opening the default devices after one stopped working: this many tries, this far apart.
REOPEN_TRIES = 4
REOPEN_WAIT_S = 0.5
# The real-time paths (microphone to wire, played audio to the echo canceller) use
# soxr's low-quality filter: the better ones hold back up to 37 ms (158 ms towards
# 8 kHz) of audio in 10 ms steps; this one up to 20 ms, and it is plenty for speech.
REALTIME_QUALITY = "LQ"
#: The rate of what the microphone taps get (a hotword detector's), and the rate the
#: microphone opens at while only listening.
TAP_RATE = 16000
#: Push-to-talk: how much more of the microphone reaches the agent after the talk key
#: is released, so the last word is not cut (counted in audio samples).
PTT_TAIL_MS = 200

# PortAudio's callback status flags (paInputOverflow, paOutputUnderflow).
_INPUT_OVERFLOW = 0x2
_OUTPUT_UNDERFLOW = 0x4

LevelListener = Callable[[float, float], None]
#: Called on the DSP thread with each echo-cancelled microphone chunk (TAP_RATE, mono).
MicTap = Callable[[Int16Array], None]


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
    #: What they were opened for: the settings then, and the microphone rate asked for
    #: (the device may have run at another).
    settings: AudioSettings
    asked_input_rate: int
    input_stream: Any = None
    output_stream: Any = None
    #: Something a conversation on these devices should be told (no echo cancellation).
    notice: str | None = None


@dataclass(frozen=True, slots=True)
class _Attachment:
    """A conversation the microphone feeds: read by the DSP thread as one reference."""

    generation: int
    wire: AudioFormat


def gate_push_to_talk(samples: Int16Array, open_samples: int) -> tuple[Int16Array, int]:
    """Push-to-talk with the key up: keep the first ``open_samples`` of ``samples`` (the
    tail after a release), silence the rest. Returns the samples and how many of the
    tail are left for the next call."""
    if open_samples >= samples.size:
        return samples, open_samples - samples.size
    gated = np.zeros_like(samples)
    gated[:open_samples] = samples[:open_samples]
    return gated, 0


class AudioEngine:
    """An :class:`~voicedesk.session.AudioPort` on real devices (PyAudio, callback mode),
    which can also keep the microphone open between conversations (:meth:`listen`).

    ``on_levels(input_rms, output_rms)`` (0..1 each) is called on the event loop
    :data:`LEVELS_PER_SECOND` times a second while the devices are open, for meters.
    ``on_listening_failure(sentence)`` is called on the event loop when the devices
    fail while listening and none could be reopened (standby has then ended).
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
        self.on_listening_failure: Callable[[str], None] | None = None
        self._portaudio_factory = portaudio_factory
        self._portaudio: PortAudio | None = None
        self._preparing: asyncio.Future[PortAudio] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: AudioSink | None = None
        self._input_format: AudioFormat | None = None
        self._output_format: AudioFormat | None = None
        self._pipeline: _Pipeline | None = None
        self._playback = PlaybackBuffer(1)
        self._playback_rate = 0
        self._cues = PlaybackBuffer(1)
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
        # start/stop/listen/stop_listening one at a time; device changes (these, the
        # watchdog's, switch_devices) one at a time.
        self._lifecycle_lock = asyncio.Lock()
        self._reconfigure_lock = asyncio.Lock()
        self._listening = False
        self._generation = 0  # one per conversation: late chunks of an old one are dropped
        self._taps_lock = threading.Lock()
        # Written by the loop thread, read by the audio threads (single assignments).
        self._taps: tuple[MicTap, ...] = ()
        self._attachment: _Attachment | None = None
        self._muted = False
        self._volume = 1.0
        self._push_to_talk = False
        self._talk_held = False
        self._releases = 0  # talk-key releases; the DSP thread starts a tail on each
        # Written by the DSP thread: the releases it has seen, the tail left (wire samples).
        self._releases_seen = 0
        self._tail_left = 0
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
        """Open the devices for a conversation, or join the ones open for listening
        (when the microphone already runs at the rate this conversation would open it
        at, no device is reopened). Raises :class:`AudioStartError` (a sentence)."""
        async with self._lifecycle_lock:
            self._loop = asyncio.get_running_loop()
            self.speaker_underruns = self.microphone_overflows = 0
            self._input_format = input_format
            self._output_format = output_format
            mic_rate = self._conversation_mic_rate(input_format)
            pipeline = self._pipeline
            if pipeline is None:
                await self._open_devices(mic_rate)
            elif not self._reusable(pipeline, mic_rate):
                await self._reopen_for_conversation(pipeline, mic_rate)
            else:
                logger.info("audio: the conversation joins the open devices")
            assert self._pipeline is not None
            self._playback.clear()
            self._play_resampler = StreamResampler(
                output_format.sample_rate, self._pipeline.output_rate
            )
            self._generation += 1
            self._sink = sink
            self._attachment = _Attachment(self._generation, input_format)
            self._running = True
            self._ensure_watchdog()
            if self._pipeline.notice:
                sink.on_audio_notice(self._pipeline.notice)

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
        """End the conversation's audio: close the devices, or, while listening, detach
        the conversation, drop what it still had to play and stay in standby with the
        devices open. Safe to call twice."""
        async with self._lifecycle_lock:
            was_running, self._running = self._running, False
            if was_running:
                logger.info(
                    "audio: %d speaker underruns, %d microphone overflows",
                    self.speaker_underruns,
                    self.microphone_overflows,
                )
            self._detach()
            pipeline = self._pipeline
            if self._listening and pipeline is not None:
                if pipeline.input_rate < TAP_RATE:
                    # The taps would get upsampled narrowband audio: back to a rate
                    # that carries what a hotword detector listens to.
                    await self._reopen_for_standby(pipeline)
                return
            await self._stop_watchdog()
            await self._release()

    # ------------------------------------------------------------------ listening

    async def listen(self) -> None:
        """Standby: open the microphone and the speaker without a conversation (the
        microphone at 16 kHz where the device allows it, echo cancellation running so
        the agent's voice and cues do not reach the taps); microphone chunks go to the
        taps only, nothing to any sink. Idempotent. Raises :class:`AudioStartError`
        (a sentence)."""
        async with self._lifecycle_lock:
            if self._listening:
                return
            self._loop = asyncio.get_running_loop()
            if self._pipeline is None:
                await self._open_devices(self._standby_mic_rate())
            self._listening = True
            self._ensure_watchdog()

    async def stop_listening(self) -> None:
        """Leave standby: close the devices unless a conversation is using them (then
        they close when it stops). Safe to call twice."""
        async with self._lifecycle_lock:
            if not self._listening:
                return
            self._listening = False
            if self._running:
                return
            await self._stop_watchdog()
            await self._release()

    async def close(self) -> None:
        """End the conversation's audio and standby: every device closed."""
        await self.stop_listening()
        await self.stop()

    @property
    def is_listening(self) -> bool:
        return self._listening

    def add_mic_tap(self, tap: MicTap) -> Callable[[], None]:
        """``tap(samples)`` is called on the DSP thread with each echo-cancelled
        microphone chunk, :data:`TAP_RATE` (16 kHz) mono int16 (resampled if the
        microphone runs at another rate), while listening and during conversations;
        before mute and push-to-talk. The array is read-only and the tap's to keep.
        Returns a remover (safe to call twice). A tap that raises is logged once and
        removed. Taps must not block: they hold up the audio to the agent."""
        with self._taps_lock:
            self._taps = (*self._taps, tap)

        def remove() -> None:
            self._remove_tap(tap)

        return remove

    def _remove_tap(self, tap: MicTap) -> None:
        with self._taps_lock:
            taps = list(self._taps)
            for i, present in enumerate(taps):
                if present is tap:
                    del taps[i]
                    self._taps = tuple(taps)
                    return

    def play_cue(self, samples: Int16Array, rate: int) -> None:
        """Play a short sound (a chime, ``rate`` Hz mono) through the speaker now,
        mixed over whatever else plays (volume applies), while listening or in a
        conversation; it never counts as the agent speaking, and the echo canceller
        hears it. Ignored while no speaker is open."""
        pipeline = self._pipeline
        if pipeline is None:
            logger.debug("audio: a cue with no speaker open is not played")
            return
        cue = np.ascontiguousarray(samples, dtype=np.int16)
        if rate != pipeline.output_rate:
            cue = StreamResampler(rate, pipeline.output_rate).process(cue, last=True)
        self._cues.push(cue.copy())

    # ------------------------------------------------------------------ push-to-talk

    def set_push_to_talk(self, enabled: bool) -> None:
        """Push-to-talk: while enabled and the talk key is not held (nor its tail
        running), the conversation gets silence (like mute: chunks keep flowing, all
        zeros)."""
        self._push_to_talk = bool(enabled)

    def set_talking(self, held: bool) -> None:
        """The talk key is held (True) or released; after a release :data:`PTT_TAIL_MS`
        more of the microphone flows, so the last word is not cut."""
        held = bool(held)
        if held == self._talk_held:
            return
        if not held:
            # The release first, then the key: the DSP thread reads them the other way
            # round, so when it sees the key up it also sees the release (no gap).
            self._releases += 1
        self._talk_held = held

    @property
    def push_to_talk(self) -> bool:
        return self._push_to_talk

    @property
    def talking(self) -> bool:
        """Audio flows to the agent now as far as push-to-talk goes: it is off, the key
        is held, or the tail after a release still runs."""
        if not self._push_to_talk or self._talk_held:
            return True
        if self._tail_left > 0:
            return True
        # A release the DSP thread has not reached yet starts a tail (if it runs).
        return self._dsp is not None and self._releases != self._releases_seen

    # ------------------------------------------------------------------ devices

    @property
    def input_device(self) -> DeviceInfo | None:
        return self._pipeline.input_device if self._pipeline else None

    @property
    def output_device(self) -> DeviceInfo | None:
        return self._pipeline.output_device if self._pipeline else None

    @property
    def microphone_rate(self) -> int | None:
        """The rate the open microphone runs at (Hz), ``None`` while closed."""
        return self._pipeline.input_rate if self._pipeline else None

    async def switch_devices(
        self, *, input_device: str | int | None = None, output_device: str | int | None = None
    ) -> None:
        """Move to other devices while the conversation (or standby) goes on. ``None``
        keeps the current one. Raises :class:`DeviceError` (a sentence) and keeps the
        old devices when the new ones cannot be opened."""
        async with self._reconfigure_lock:
            current = self._pipeline
            if current is None:
                raise DeviceError("Audio is not running.")
            wanted_in = input_device if input_device is not None else current.input_device.index
            wanted_out = output_device if output_device is not None else current.output_device.index
            mic_rate = current.asked_input_rate
            await asyncio.to_thread(self._close_streams, current)
            try:
                self._pipeline = await asyncio.to_thread(
                    self._open, wanted_in, wanted_out, mic_rate, current.settings
                )
            except DeviceError:
                self._pipeline = await asyncio.to_thread(
                    self._open,
                    current.input_device.index,
                    current.output_device.index,
                    mic_rate,
                    current.settings,
                )
                raise

    # ------------------------------------------------------------------ opening

    def _standby_mic_rate(self) -> int:
        return self.settings.microphone_rate or TAP_RATE

    def _conversation_mic_rate(self, wire: AudioFormat) -> int:
        return self.settings.microphone_rate or _canceller_rate(wire)

    def _reusable(self, pipeline: _Pipeline, mic_rate: int) -> bool:
        """Whether a conversation wanting ``mic_rate`` can join the open devices."""
        return (
            mic_rate in (pipeline.input_rate, pipeline.asked_input_rate)
            and pipeline.settings == self.settings
            and _is_active(pipeline.input_stream)
            and _is_active(pipeline.output_stream)
        )

    async def _open_devices(self, mic_rate: int) -> None:
        """Open both streams from nothing; :class:`AudioStartError` (everything released)."""
        try:
            await self.prepare()
            assert self._portaudio is not None
            self._pipeline = await self._open_configured(mic_rate)
        except Exception as exc:
            await self._release()
            raise _start_error(exc) from None

    async def _reopen_for_conversation(self, pipeline: _Pipeline, mic_rate: int) -> None:
        """The standby devices, reopened for a conversation at ``mic_rate`` (or with new
        settings). On failure, standby carries on if it can; raises :class:`AudioStartError`."""
        try:
            async with self._reconfigure_lock:
                await asyncio.to_thread(self._close_streams, pipeline)
                self._pipeline = None
                self._pipeline = await self._open_configured(mic_rate)
        except Exception as exc:
            error = _start_error(exc)
            if self._listening:
                await self._reopen_for_standby(None)
            else:
                await self._release()
            raise error from None

    async def _reopen_for_standby(self, pipeline: _Pipeline | None) -> None:
        """Reopen the devices at the standby rate; when that fails, standby ends."""
        try:
            async with self._reconfigure_lock:
                if pipeline is not None:
                    await asyncio.to_thread(self._close_streams, pipeline)
                self._pipeline = None
                self._pipeline = await self._open_configured(self._standby_mic_rate())
        except Exception as exc:
            logger.warning("audio: listening could not go on: %s", exc)
            self._listening = False
            await self._stop_watchdog()
            await self._release()
            self._listening_failed(f"{_start_error(exc)} voicedesk stopped listening.")

    def _detach(self) -> None:
        """The conversation no longer gets microphone chunks nor plays anything."""
        self._attachment = None
        self._generation += 1
        self._sink = None
        self._playback.clear()
        self._play_resampler = None
        if self._stopped_report is not None:
            self._stopped_report.cancel()
            self._stopped_report = None

    async def _open_configured(self, mic_rate: int) -> _Pipeline:
        """The devices the settings name, opened (in a worker thread) with the microphone
        at ``mic_rate``."""
        settings = self.settings
        return await asyncio.to_thread(
            self._open, settings.input_device, settings.output_device, mic_rate, settings
        )

    def _open(
        self,
        wanted_input: str | int | None,
        wanted_output: str | int | None,
        mic_rate: int,
        settings: AudioSettings,
    ) -> _Pipeline:
        """Open both streams (worker thread), the microphone at ``mic_rate`` where it
        can. Stops a running DSP thread first."""
        portaudio = self._portaudio
        assert portaudio is not None
        self._stop_dsp()
        out_dev = portaudio.choose(wanted_output, output=True)
        in_dev = portaudio.choose(wanted_input, output=False)
        out_rate = portaudio.supported_rate(out_dev, output=True, preferred=settings.speaker_rate)
        in_rate = portaudio.supported_rate(in_dev, output=False, preferred=mic_rate)
        pipeline = _Pipeline(in_dev, out_dev, in_rate, out_rate, settings, mic_rate)

        if self._playback_rate != out_rate:
            self._playback = PlaybackBuffer(out_rate * FADE_MS // 1000)
            self._cues = PlaybackBuffer(1)
            self._playback_rate = out_rate
        resampler = self._play_resampler
        if resampler is not None and resampler.to_rate != out_rate:
            self._play_resampler = StreamResampler(resampler.from_rate, out_rate)
        canceller, notice = make_echo_canceller(
            in_rate, settings.echo_cancellation, settings.noise_suppression
        )
        self.echo_canceller_name = canceller.name
        pipeline.notice = notice
        if notice and self._running:  # reopened mid-conversation; start() tells a new one
            self._post(self._notice, notice)

        self._mic_queue = queue.SimpleQueue()
        self._mic_batch = []
        self._played_queue = queue.SimpleQueue()
        frames_out = out_rate * SPEAKER_FRAME_MS // 1000
        # A chunk cannot leave before its last sample is captured, so the microphone
        # may hand over a chunk at a time: half the wake-ups of 10 ms buffers, and
        # measured no later on the wire.
        frames_in = max(1, in_rate * settings.chunk_ms // 1000)
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

    def _close_streams(self, pipeline: _Pipeline, *, abort: bool = False) -> None:
        """Close both streams. ``abort``: a device that stopped working is not stopped
        politely first (PortAudio's stop waits for a callback that a stalled ALSA device
        never makes, forever; closing aborts at once)."""
        for stream in (pipeline.input_stream, pipeline.output_stream):
            if stream is None:
                continue
            if not abort:
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
        self._cues.clear()
        self._attachment = None
        if self._stopped_report is not None:
            self._stopped_report.cancel()
            self._stopped_report = None
        self._audible = False
        self._tail_left = 0
        self._releases_seen = self._releases
        self.input_level = self.output_level = 0.0

    # ------------------------------------------------------------------ PortAudio threads

    def _speaker_callback(
        self, in_data: bytes | None, frame_count: int, time_info: Any, status: int
    ) -> tuple[bytes, int]:
        if status & _OUTPUT_UNDERFLOW:
            self.speaker_underruns += 1
        samples, real = self._playback.pull(frame_count)
        cues = self._cues
        if cues.queued_samples:
            cue, _ = cues.pull(frame_count)
            mixed = samples.astype(np.int32) + cue
            samples = np.clip(mixed, -32768, 32767).astype(np.int16)
        volume = self._volume
        if volume < 1.0:
            samples = (samples.astype(np.float32) * volume).astype(np.int16)
        self._played_queue.put_nowait(samples)
        # Only the agent's audio counts as the agent speaking, never a cue.
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
        rate = pipeline.input_rate  # the echo canceller's
        chunk_ms = pipeline.settings.chunk_ms
        frame = rate * FRAME_MS // 1000
        played_to_canceller = StreamResampler(pipeline.output_rate, rate, REALTIME_QUALITY)
        to_taps = StreamResampler(rate, TAP_RATE, REALTIME_QUALITY)
        near_frames, far_frames = _Frames(frame), _Frames(frame)
        # The conversation fed (None while only listening), and its wire's state.
        attached: _Attachment | None = None
        to_wire: StreamResampler | None = None
        chunk: _Frames | None = None
        tail_samples = 0
        levels_every = max(1, 1000 // LEVELS_PER_SECOND // FRAME_MS)
        # Meters fall by a factor of 0.8 per 10 ms frame; the loop runs once per chunk.
        decay = 0.8 ** (chunk_ms / FRAME_MS)
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
            taps = self._taps
            if taps:
                self._feed_taps(taps, to_taps.process(near_samples))

            attachment = self._attachment
            if attachment is not attached:
                attached = attachment
                if attachment is None:
                    to_wire = chunk = None
                else:
                    wire_rate = attachment.wire.sample_rate
                    to_wire = StreamResampler(rate, wire_rate, REALTIME_QUALITY)
                    chunk = _Frames(max(1, wire_rate * chunk_ms // 1000))
                    tail_samples = wire_rate * PTT_TAIL_MS // 1000
            # The key first, then the releases (set_talking writes them the other way).
            held = self._talk_held
            releases = self._releases
            if releases != self._releases_seen:
                self._tail_left = tail_samples if attached is not None else 0
                self._releases_seen = releases
            if attached is not None and to_wire is not None and chunk is not None:
                resampled = to_wire.process(near_samples)
                # Both after the resampler, so no filter tail leaks through.
                if self._push_to_talk and not held:
                    resampled, self._tail_left = gate_push_to_talk(resampled, self._tail_left)
                if self._muted:
                    resampled = np.zeros_like(resampled)
                for piece in chunk.feed(resampled):
                    self._post(
                        self._deliver_mic_chunk, attached.generation, encode(piece, attached.wire)
                    )
            before, frames_done = frames_done, frames_done + len(cleaned)
            if frames_done // levels_every != before // levels_every:
                self.input_level, self.output_level = in_level, out_level
                if self.on_levels is not None:
                    self._post(self.on_levels, in_level, out_level)

    def _feed_taps(self, taps: tuple[MicTap, ...], samples: Int16Array) -> None:
        if samples.size == 0:
            return
        frames = np.array(samples, dtype=np.int16)  # the taps' own, and read-only
        frames.flags.writeable = False
        for tap in taps:
            try:
                tap(frames)
            except Exception:
                logger.exception("a microphone tap failed; it gets no more audio")
                self._remove_tap(tap)

    # ------------------------------------------------------------------ back on the loop

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us
            loop.call_soon_threadsafe(callback, *args)

    def _deliver_mic_chunk(self, generation: int, chunk: bytes) -> None:
        if self._running and generation == self._generation and self._sink is not None:
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

    def _listening_failed(self, message: str) -> None:
        if self.on_listening_failure is not None:
            try:
                self.on_listening_failure(message)
            except Exception:
                logger.exception("the listening-failure handler failed")

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.ensure_future(self._watch())

    async def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None or watchdog is asyncio.current_task():
            return
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog

    async def _open_defaults(self, failed: _Pipeline) -> _Pipeline:
        """The default devices, opened in place of ``failed``'s; a sound server that is
        restarting (PipeWire or PulseAudio: about a second) is given a few tries."""
        for attempt in range(REOPEN_TRIES):
            try:
                return await asyncio.to_thread(
                    self._open, None, None, failed.asked_input_rate, failed.settings
                )
            except DeviceError:
                if attempt == REOPEN_TRIES - 1:
                    raise
                await asyncio.sleep(REOPEN_WAIT_S)
        raise AssertionError("unreachable")

    async def _watch(self) -> None:
        """A device that vanishes stops calling back: reopen the defaults, or give up
        with a sentence (to the conversation, and to whoever listens)."""
        reopened: _Pipeline | None = None  # the devices this watchdog reopened last
        reopened_mark = 0.0  # _last_mic_frame as _open left it: unchanged, no frame came
        while self._running or self._listening:
            await asyncio.sleep(0.5)
            pipeline = self._pipeline
            if pipeline is None or self._reconfigure_lock.locked():
                continue
            stalled = time.monotonic() - self._last_mic_frame > STALL_S
            inactive = not _is_active(pipeline.output_stream) or not _is_active(
                pipeline.input_stream
            )
            if not (stalled or inactive):
                if pipeline is reopened and self._last_mic_frame != reopened_mark:
                    reopened = None  # they work: a later failure may reopen again
                continue
            lost = "microphone" if stalled or not _is_active(pipeline.input_stream) else "speaker"
            logger.warning("the %s stopped working; reopening the default devices", lost)
            try:
                async with self._reconfigure_lock:
                    await asyncio.to_thread(self._close_streams, pipeline, abort=True)
                    self._pipeline = None
                    if pipeline is reopened:
                        # The defaults were tried already and never worked: no other
                        # device would (a microphone that stalls again, not a loop of
                        # reopening and telling the user every few seconds).
                        raise DeviceError(f"the default {lost} does not work either")
                    self._pipeline = reopened = await self._open_defaults(pipeline)
                    reopened_mark = self._last_mic_frame
            except DeviceError as exc:
                logger.warning("no working audio device: %s", exc)
                was_running, was_listening = self._running, self._listening
                sink = self._sink
                self._running = self._listening = False
                self._watchdog = None
                await self._release()
                if was_running and sink is not None:
                    sink.on_audio_failure(
                        f"The {lost} stopped working and no other could be opened, so the "
                        "conversation goes on as text."
                    )
                if was_listening:
                    self._listening_failed(
                        f"The {lost} stopped working and no other could be opened, so "
                        "voicedesk stopped listening."
                    )
                return
            self._notice(
                f"The {lost} stopped working; voicedesk switched to the default devices "
                f"({self._pipeline.input_device.name} / {self._pipeline.output_device.name})."
            )


def _start_error(exc: Exception) -> AudioStartError:
    """The sentence for a failure to open the devices."""
    if isinstance(exc, DeviceError):
        return AudioStartError(str(exc))
    if not isinstance(exc, AudioStartError):  # PortAudio failing to initialise, say
        logger.error("audio could not start", exc_info=exc)
        return AudioStartError(f"The sound system could not be opened ({exc}).")
    return exc


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
