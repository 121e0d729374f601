"""The local agent's voice: espeak-ng where installed, else a clearly non-speech tone pattern.

Output is int16 mono at the rate asked for; the server encodes it into the
negotiated ``agent_output_audio_format``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import struct
from enum import StrEnum

import numpy as np

from voicedesk.audio.codec import Int16Array, resample_linear

logger = logging.getLogger(__name__)


class VoiceKind(StrEnum):
    AUTO = "auto"  # espeak-ng if installed, else tones
    ESPEAK = "espeak"
    TONES = "tones"  # beeps, one per word: clearly not speech
    SINE = "sine"  # one steady tone (for pitch and latency measurements)


SINE_HZ = 1000.0
_TONE_LEVEL = 0.3


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _parse_wav(data: bytes) -> tuple[int, Int16Array]:
    """(rate, samples) of espeak-ng's streamed WAV (its size fields are placeholders)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV stream")
    pos = 12
    rate = 22050
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"fmt ":
            rate = struct.unpack_from("<I", data, pos + 12)[0]
        elif chunk_id == b"data":
            body = data[pos + 8 :]
            body = body[: len(body) - len(body) % 2]
            return rate, np.frombuffer(body, dtype="<i2").astype(np.int16)
        pos += 8 + size
    raise ValueError("WAV stream has no data chunk")


def sine(
    duration_ms: float, rate: int, hz: float = SINE_HZ, level: float = _TONE_LEVEL
) -> Int16Array:
    n = int(rate * duration_ms / 1000.0)
    t = np.arange(n, dtype=np.float64) / rate
    return np.round(np.sin(2 * np.pi * hz * t) * level * 32767).astype(np.int16)


def tone_pattern(text: str, rate: int) -> Int16Array:
    """One short beep per word, alternating two pitches, with gaps: audibly not a voice."""
    words = max(1, len(text.split()))
    beep_ms, gap_ms = 120.0, 60.0
    gap = np.zeros(int(rate * gap_ms / 1000.0), dtype=np.int16)
    parts: list[Int16Array] = []
    for i in range(words):
        tone = sine(beep_ms, rate, hz=523.25 if i % 2 == 0 else 659.25).astype(np.float64)
        fade = min(len(tone) // 4, int(rate * 0.005))
        if fade:  # 5 ms ramps: no clicks
            ramp = np.linspace(0.0, 1.0, fade)
            tone[:fade] *= ramp
            tone[-fade:] *= ramp[::-1]
        parts.extend((np.round(tone).astype(np.int16), gap))
    return np.concatenate(parts)


async def _espeak(text: str, rate: int) -> Int16Array:
    proc = await asyncio.create_subprocess_exec(
        "espeak-ng",
        "--stdout",
        "-v",
        "en-us",
        "-s",
        "185",
        "--",
        text,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        # The turn was interrupted: leave no synthesiser (or its reaper thread) behind.
        await asyncio.shield(_kill_and_reap(proc))
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng exited with {proc.returncode}")
    # Parsing and resampling a reply's seconds of audio take tens of ms: off the loop,
    # which in the window's --demo is also the GUI's.
    return await asyncio.to_thread(_wav_at_rate, out, rate)


async def _kill_and_reap(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` and wait for it, reading its output to the end on the way.

    asyncio stops reading a pipe whose unread data passes twice the stream's limit, and
    ``wait()`` returns only once every pipe has seen its end: with nobody reading (the
    reader was cancelled with the turn), a synthesiser that wrote a few seconds of
    speech is never reaped and the call's handler never returns."""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    if proc.stdout is not None:
        while await proc.stdout.read(1 << 16):
            pass
    await proc.wait()


def _wav_at_rate(wav: bytes, rate: int) -> Int16Array:
    source_rate, samples = _parse_wav(wav)
    return resample_linear(samples, source_rate, rate)


async def synthesize(
    text: str, rate: int, kind: VoiceKind, sine_ms_per_char: float = 20.0
) -> Int16Array:
    """Speech for ``text`` at ``rate`` Hz."""
    if kind is VoiceKind.SINE:
        return sine(max(200.0, sine_ms_per_char * len(text)), rate)
    if kind in (VoiceKind.AUTO, VoiceKind.ESPEAK) and espeak_available():
        try:
            return await _espeak(text, rate)
        except (OSError, RuntimeError, ValueError) as exc:
            logger.warning("espeak-ng failed (%s); speaking in tones", exc)
    return tone_pattern(text, rate)
