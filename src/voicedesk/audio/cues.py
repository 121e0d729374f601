"""The hands-free chimes, made with numpy (no sound files to ship).

Each is two soft sine tones, the second entering as the first fades, with a gentle
attack (no click) and a bell-like decay: a rising pair when a conversation starts, a
lower falling pair when voicedesk listens for the hotword again. Play them with
:meth:`~voicedesk.audio.engine.AudioEngine.play_cue` (``CUE_RATE``).
"""

from __future__ import annotations

import numpy as np

from voicedesk.audio.codec import Int16Array

CUE_RATE = 48000
CUE_LEVEL = 0.25  # peak, of full scale: soft, the agent's voice is louder
ATTACK_MS = 8


def conversation_cue(rate: int = CUE_RATE) -> Int16Array:
    """Listening -> a conversation starts: a rising fifth (A5 then E6), ~260 ms."""
    return _two_tones(880.0, 1318.5, rate)


def listening_cue(rate: int = CUE_RATE) -> Int16Array:
    """Back to listening for the hotword: a lower, falling fourth (D5 then A4), ~260 ms."""
    return _two_tones(587.3, 440.0, rate)


def _two_tones(first_hz: float, second_hz: float, rate: int) -> Int16Array:
    tone_s, offset_s = 0.16, 0.1
    total = int(rate * (offset_s + tone_s))
    out = np.zeros(total, dtype=np.float64)
    start = int(rate * offset_s)
    first = _tone(first_hz, tone_s, rate)
    second = _tone(second_hz, tone_s, rate)
    out[: first.size] += first
    out[start : start + second.size] += second[: total - start]
    out *= CUE_LEVEL / max(float(np.abs(out).max()), 1e-9)
    return np.round(out * 32767).astype(np.int16)


def _tone(hz: float, seconds: float, rate: int) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """A sine with a raised-cosine attack and an exponential decay that ends at zero."""
    n = int(rate * seconds)
    t = np.arange(n) / rate
    # A touch of the octave makes a sine sound less like a test tone.
    wave = np.sin(2 * np.pi * hz * t) + 0.15 * np.sin(4 * np.pi * hz * t)
    envelope = np.exp(-t / (seconds / 4))
    attack = max(1, int(rate * ATTACK_MS / 1000))
    envelope[:attack] *= 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, attack))
    envelope *= np.linspace(1.0, 0.0, n) ** 0.5  # down to exactly nothing: no click
    result: np.ndarray[tuple[int], np.dtype[np.float64]] = wave * envelope
    return result
