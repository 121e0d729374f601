"""Settings' device checks: a microphone test (a live meter of the chosen microphone)
and a speaker test (the conversation chime on the chosen speaker).

Each opens its own PortAudio stream on the device the dialog shows (by name; ``None``:
the system default), beside a conversation's if one runs. The audio callbacks only
store a number or take samples from an array (no Qt, no locks held); a Qt timer reads
the level on the GUI thread. Failures are a sentence (``failed``), never an exception.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from voicedesk.audio.codec import Int16Array, resample_linear, rms
from voicedesk.audio.cues import CUE_RATE, conversation_cue
from voicedesk.audio.devices import PortAudio
from voicedesk.audio.port import AudioStartError

logger = logging.getLogger(__name__)

METER_HZ = 30
BLOCK_MS = 20


class DeviceCheck(QObject):
    """``levelChanged(rms)``: the microphone's level (0..1) while its test runs;
    ``micChanged(on)``; ``chimeFinished()``; ``failed(sentence)``."""

    levelChanged = Signal(float)
    micChanged = Signal(bool)
    chimeFinished = Signal()
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pa: PortAudio | None = None
        self._mic: Any = None
        self._speaker: Any = None
        self._level = 0.0  # written by the audio callback, read by the timer
        self._chime: Int16Array = np.zeros(0, dtype=np.int16)
        self._played = 0
        self._timer = QTimer(self)
        self._timer.setInterval(1000 // METER_HZ)
        self._timer.timeout.connect(self._tick)

    @property
    def mic_running(self) -> bool:
        return self._mic is not None

    @property
    def chime_playing(self) -> bool:
        return self._speaker is not None

    def _audio(self) -> PortAudio:
        if self._pa is None:
            self._pa = PortAudio()
        return self._pa

    # ------------------------------------------------------------------ microphone

    def start_mic(self, device: str | None) -> None:
        self.stop_mic()
        try:
            pa = self._audio()
            info = pa.choose(device, output=False)
            rate = pa.supported_rate(info, output=False, preferred=16000)
            frames = rate * BLOCK_MS // 1000

            def callback(data: bytes, _n: int, _t: object, _s: int) -> tuple[None, int]:
                self._level = rms(np.frombuffer(data, dtype=np.int16))
                return None, pa.pyaudio.paContinue

            self._mic = pa.open(
                info, output=False, rate=rate, frames_per_buffer=frames, callback=callback
            )
            self._mic.start_stream()
        except (AudioStartError, OSError) as exc:
            self._mic = None
            self.failed.emit(f"The microphone test could not start: {exc}")
            return
        self._timer.start()
        self.micChanged.emit(True)

    def stop_mic(self) -> None:
        stream, self._mic = self._mic, None
        if stream is not None:
            _close(stream)
            self._level = 0.0
            self.levelChanged.emit(0.0)
            self.micChanged.emit(False)
        self._settle_timer()

    # ------------------------------------------------------------------ speaker

    def play_chime(self, device: str | None) -> None:
        self._stop_speaker()
        try:
            pa = self._audio()
            info = pa.choose(device, output=True)
            rate = pa.supported_rate(info, output=True, preferred=CUE_RATE)
            chime = conversation_cue(CUE_RATE)
            self._chime = chime if rate == CUE_RATE else resample_linear(chime, CUE_RATE, rate)
            self._played = 0
            frames = rate * BLOCK_MS // 1000

            def callback(_d: object, n: int, _t: object, _s: int) -> tuple[bytes, int]:
                start = self._played
                block = self._chime[start : start + n]
                self._played = start + n
                if block.size < n:
                    block = np.concatenate([block, np.zeros(n - block.size, dtype=np.int16)])
                    return block.tobytes(), pa.pyaudio.paComplete
                return block.tobytes(), pa.pyaudio.paContinue

            self._speaker = pa.open(
                info, output=True, rate=rate, frames_per_buffer=frames, callback=callback
            )
            self._speaker.start_stream()
        except (AudioStartError, OSError) as exc:
            self._speaker = None
            self.failed.emit(f"The speaker test could not play: {exc}")
            return
        self._timer.start()

    def _stop_speaker(self) -> None:
        stream, self._speaker = self._speaker, None
        if stream is not None:
            _close(stream)

    # ------------------------------------------------------------------ both

    def _tick(self) -> None:
        if self._mic is not None:
            self.levelChanged.emit(self._level)
        speaker = self._speaker
        if speaker is not None and not _active(speaker):
            self._stop_speaker()
            self.chimeFinished.emit()
        self._settle_timer()

    def _settle_timer(self) -> None:
        if self._mic is None and self._speaker is None:
            self._timer.stop()

    def close(self) -> None:
        """Stop both tests and release PortAudio (the dialog closes)."""
        self.stop_mic()
        self._stop_speaker()
        self._timer.stop()
        pa, self._pa = self._pa, None
        if pa is not None:
            pa.terminate()


def _active(stream: Any) -> bool:
    try:
        return bool(stream.is_active())
    except OSError:
        return False


def _close(stream: Any) -> None:
    try:
        stream.stop_stream()
    except OSError as exc:
        logger.debug("stopping a test stream: %s", exc)
    try:
        stream.close()
    except OSError as exc:
        logger.debug("closing a test stream: %s", exc)
