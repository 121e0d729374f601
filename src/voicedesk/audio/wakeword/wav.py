"""Reading WAV files of any common layout: 8/16/24/32-bit PCM or 32/64-bit float, any
rate, any number of channels (the standard library's ``wave`` reads PCM only)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from voicedesk.audio.codec import FloatArray, Int16Array

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE


class WavError(Exception):
    """The file is not a WAV file this module reads; the message is a sentence."""


@dataclass(frozen=True, slots=True)
class WavAudio:
    rate: int
    channels: int
    samples: FloatArray  # frames x channels, -1..1

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.rate if self.rate else 0.0

    def mono(self) -> FloatArray:
        """The channels averaged: float32, -1..1."""
        mono: FloatArray = self.samples.mean(axis=1, dtype=np.float32).astype(np.float32)
        return mono

    def mono_int16(self) -> Int16Array:
        return np.clip(np.round(self.mono() * 32767.0), -32768, 32767).astype(np.int16)

    def mono_at(self, rate: int) -> FloatArray:
        """Mono, resampled to ``rate`` (soxr's high quality)."""
        mono = self.mono()
        if self.rate == rate or mono.size == 0:
            return mono
        return np.asarray(soxr.resample(mono, self.rate, rate, quality="HQ"), dtype=np.float32)


def read_wav(path: Path) -> WavAudio:
    """Raises :class:`WavError` (a sentence naming the file) for anything else."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WavError(f"{path.name} could not be read ({exc.strerror or exc}).") from None
    return parse_wav(data, path.name)


def parse_wav(data: bytes, name: str = "the file") -> WavAudio:
    try:
        return _parse_wav(data, name)
    except struct.error:  # a chunk that says it is longer than the file
        raise WavError(f"{name} is cut short; it is not a usable WAV file.") from None


def _parse_wav(data: bytes, name: str) -> WavAudio:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError(f"{name} is not a WAV file (no RIFF/WAVE header); save it as WAV.")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None  # tag, channels, rate, bits
    body: bytes | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        start = pos + 8
        if chunk_id == b"fmt " and size >= 16:
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, start)
            if tag == _EXTENSIBLE and size >= 40:
                tag = struct.unpack_from("<H", data, start + 24)[0]  # the subformat GUID's head
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            # Streamed WAVs (espeak-ng's, say) leave the size as a placeholder: the data
            # then runs to the end of the file.
            end = start + size if size and start + size <= len(data) else len(data)
            body = data[start:end]
            if fmt is not None:
                break
        pos = start + size + (size & 1)
    if fmt is None:
        raise WavError(f"{name} has no format chunk; it is not a usable WAV file.")
    if body is None:
        raise WavError(f"{name} has no audio data.")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1000:
        raise WavError(f"{name} declares {channels} channels at {rate} Hz; it is damaged.")
    samples = _decode(body, tag, bits, name)
    frames = samples.size // channels
    return WavAudio(rate, channels, samples[: frames * channels].reshape(frames, channels))


def _decode(body: bytes, tag: int, bits: int, name: str) -> FloatArray:
    if tag == _PCM and bits == 8:
        raw8 = np.frombuffer(body, dtype=np.uint8)
        return ((raw8.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if tag == _PCM and bits == 16:
        raw16 = np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2")
        return (raw16.astype(np.float32) / 32768.0).astype(np.float32)
    if tag == _PCM and bits == 24:
        raw = np.frombuffer(body[: len(body) // 3 * 3], dtype=np.uint8).reshape(-1, 3)
        value = (
            raw[:, 0].astype(np.int32)
            | (raw[:, 1].astype(np.int32) << 8)
            | (raw[:, 2].astype(np.int32) << 16)
        )
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return (value.astype(np.float32) / float(1 << 23)).astype(np.float32)
    if tag == _PCM and bits == 32:
        raw32 = np.frombuffer(body[: len(body) // 4 * 4], dtype="<i4")
        return (raw32.astype(np.float64) / 2147483648.0).astype(np.float32)
    if tag == _FLOAT and bits in (32, 64):
        dtype = "<f4" if bits == 32 else "<f8"
        width = bits // 8
        rawf = np.frombuffer(body[: len(body) // width * width], dtype=dtype)
        return np.nan_to_num(rawf.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    kind = {_PCM: "PCM", _FLOAT: "float"}.get(tag, f"format code {tag}")
    raise WavError(
        f"{name} is {bits}-bit {kind} audio, which is not supported; save it as 16-bit PCM WAV."
    )
