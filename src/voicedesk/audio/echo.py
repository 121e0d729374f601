"""Echo cancellation: WebRTC's audio processing (livekit's build), or ducking.

Both work on 10 ms frames of int16 mono. ``far_end`` gets exactly what the speaker
played, at the played rate; ``near_end`` gets the microphone at the same rate and
returns what may be sent. Called from the engine's DSP thread only.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from voicedesk.audio.codec import Int16Array, rms

logger = logging.getLogger(__name__)

NO_AEC_NOTICE = (
    "Echo cancellation is not available here, so the microphone is muted while the agent "
    "speaks; use headphones to talk over it."
)


class EchoCanceller(Protocol):
    name: str

    def far_end(self, frame: Int16Array) -> None:
        """A 10 ms frame that was just played."""

    def near_end(self, frame: Int16Array, delay_ms: int) -> Int16Array:
        """A 10 ms microphone frame -> the frame to send. ``delay_ms``: the estimated
        time from playing a sample to hearing it back at the microphone."""


class WebRtcEchoCanceller:
    """Echo cancellation, noise suppression and a high-pass filter (WebRTC APM)."""

    name = "webrtc"

    def __init__(self, rate: int, noise_suppression: bool = True) -> None:
        from livekit import rtc  # imported here: it loads a native library

        self._rtc: Any = rtc
        self.rate = rate
        self.frame_samples = rate // 100
        self._delay_ms: int | None = None
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=True,
            auto_gain_control=False,
        )

    def _frame(self, frame: Int16Array) -> Any:
        return self._rtc.AudioFrame(frame.tobytes(), self.rate, 1, self.frame_samples)

    def far_end(self, frame: Int16Array) -> None:
        self._apm.process_reverse_stream(self._frame(frame))

    def near_end(self, frame: Int16Array, delay_ms: int) -> Int16Array:
        audio = self._frame(frame)
        delay = max(0, min(500, delay_ms))
        if delay != self._delay_ms:  # each call crosses livekit's FFI: only on a change
            self._delay_ms = delay
            self._apm.set_stream_delay_ms(delay)
        self._apm.process_stream(audio)
        return np.frombuffer(audio.data, dtype=np.int16).copy()


class Ducker:
    """The fallback: silence the microphone while the agent is audible (plus a tail for
    the room's echo to die away). Full duplex is lost, echo is not sent."""

    name = "ducking"

    def __init__(self, rate: int, threshold: float = 0.003, tail_ms: int = 200) -> None:
        self.rate = rate
        self._threshold = threshold
        self._tail_frames = max(1, tail_ms // 10)
        self._frames_left = 0

    def far_end(self, frame: Int16Array) -> None:
        if rms(frame) > self._threshold:
            self._frames_left = self._tail_frames
        elif self._frames_left:
            self._frames_left -= 1

    def near_end(self, frame: Int16Array, delay_ms: int) -> Int16Array:
        return np.zeros_like(frame) if self._frames_left else frame


class Passthrough:
    name = "off"

    def far_end(self, frame: Int16Array) -> None:
        return None

    def near_end(self, frame: Int16Array, delay_ms: int) -> Int16Array:
        return frame


def make_echo_canceller(
    rate: int, enabled: bool, noise_suppression: bool = True
) -> tuple[EchoCanceller, str | None]:
    """The canceller to use, and a notice for the user when it had to fall back."""
    if not enabled:
        return Passthrough(), None
    try:
        return WebRtcEchoCanceller(rate, noise_suppression), None
    except Exception as exc:  # ImportError, a missing native library, an odd rate
        logger.warning("WebRTC echo cancellation unavailable: %s", exc)
        return Ducker(rate), NO_AEC_NOTICE
