"""Audio formats named in the protocol: ``pcm_<rate>`` (16-bit LE mono) and ``ulaw_8000``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)


class Encoding(StrEnum):
    PCM_S16LE = "pcm"
    ULAW = "ulaw"


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """An audio format of the protocol. ``sample_rate`` in Hz; always mono."""

    encoding: Encoding
    sample_rate: int

    @property
    def name(self) -> str:
        return f"{self.encoding.value}_{self.sample_rate}"

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding is Encoding.PCM_S16LE else 1

    def duration_ms(self, n_bytes: int) -> float:
        """Playing time of ``n_bytes`` of this format, in ms."""
        return 1000.0 * n_bytes / (self.bytes_per_sample * self.sample_rate)

    def bytes_for_ms(self, ms: float) -> int:
        """Number of bytes holding ``ms`` of audio, rounded down to whole samples."""
        return int(self.sample_rate * ms / 1000.0) * self.bytes_per_sample

    def __str__(self) -> str:
        return self.name


class UnsupportedFormatError(ValueError):
    """The agent asked for an audio format this client cannot play or capture."""


def parse_audio_format(name: str) -> AudioFormat:
    """Parse ``"pcm_16000"`` or ``"ulaw_8000"``; raise :class:`UnsupportedFormatError` otherwise."""
    encoding_name, _, rate_text = name.partition("_")
    if not rate_text.isdigit():
        raise UnsupportedFormatError(f"unknown audio format {name!r}")
    rate = int(rate_text)
    if encoding_name == "pcm" and rate in PCM_RATES:
        return AudioFormat(Encoding.PCM_S16LE, rate)
    if encoding_name == "ulaw" and rate == 8000:
        return AudioFormat(Encoding.ULAW, rate)
    raise UnsupportedFormatError(f"unsupported audio format {name!r}")


ALL_FORMATS = (
    *(AudioFormat(Encoding.PCM_S16LE, r) for r in PCM_RATES),
    AudioFormat(Encoding.ULAW, 8000),
)
