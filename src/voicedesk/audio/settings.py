"""What the user chose for audio: plain data, cheap to import (no numpy, no PortAudio)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioSettings:
    """``input_device``/``output_device``: an index, a (part of a) name, or ``None``
    for the system default. ``chunk_ms``: microphone audio per message to the agent.
    ``speaker_rate``: the rate the speaker is opened at where it can be.
    ``microphone_rate``: the rate the microphone is opened at where it can be; ``None``
    for the conversation's input rate (16 kHz while only listening for the hotword)."""

    input_device: str | int | None = None
    output_device: str | int | None = None
    echo_cancellation: bool = True
    noise_suppression: bool = True
    chunk_ms: int = 20
    speaker_rate: int | None = 48000
    microphone_rate: int | None = None
