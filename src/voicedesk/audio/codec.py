"""Sample codecs for the protocol's formats, vectorised with numpy.

PCM is 16-bit little-endian mono; μ-law is ITU-T G.711 (the same tables as
``audioop.lin2ulaw``/``ulaw2lin``, which Python 3.13 removed). Float audio is
``float32`` in -1..1.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from voicedesk.protocol.formats import AudioFormat, Encoding

FloatArray = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]

_ULAW_BIAS = 0x84
_ULAW_CLIP_14 = 8159
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def _build_ulaw_decode_table() -> Int16Array:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


_ULAW_DECODE = _build_ulaw_decode_table()


def ulaw_decode(data: bytes) -> Int16Array:
    """μ-law bytes -> int16 samples."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(samples: Int16Array) -> bytes:
    """int16 samples -> μ-law bytes (G.711, bit-exact with ``audioop.lin2ulaw(x, 2)``)."""
    value = samples.astype(np.int32) >> 2  # G.711 works on 14-bit magnitudes
    negative = value < 0
    magnitude = np.minimum(np.where(negative, -value, value), _ULAW_CLIP_14) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude)
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= len(_ULAW_SEGMENT_ENDS), 0x7F, code)  # past the last segment
    mask = np.where(negative, 0x7F, 0xFF)
    return (code ^ mask).astype(np.uint8).tobytes()


def decode(data: bytes, fmt: AudioFormat) -> Int16Array:
    """Bytes in ``fmt`` -> int16 samples at ``fmt.sample_rate``. A trailing odd byte is dropped."""
    if fmt.encoding is Encoding.ULAW:
        return ulaw_decode(data)
    usable = len(data) - (len(data) % 2)
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)


def encode(samples: Int16Array, fmt: AudioFormat) -> bytes:
    """int16 samples (already at ``fmt.sample_rate``) -> bytes in ``fmt``."""
    if fmt.encoding is Encoding.ULAW:
        return ulaw_encode(samples)
    return samples.astype("<i2").tobytes()


def to_float(samples: Int16Array) -> FloatArray:
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


def to_int16(samples: FloatArray) -> Int16Array:
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)


def rms(samples: Int16Array) -> float:
    """Root-mean-square level, 0..1 of full scale; 0 for no samples."""
    if samples.size == 0:
        return 0.0
    x = samples.astype(np.float32)
    return float(np.sqrt(np.dot(x, x) / samples.size)) / 32768.0


def resample_linear(samples: Int16Array, from_rate: int, to_rate: int) -> Int16Array:
    """Offline linear-interpolation resampling of a whole signal (for synthesised speech)."""
    if from_rate == to_rate or samples.size == 0:
        return samples
    n_out = max(1, round(samples.size * to_rate / from_rate))
    positions = np.arange(n_out, dtype=np.float64) * (from_rate / to_rate)
    resampled = np.interp(positions, np.arange(samples.size), samples.astype(np.float64))
    return np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
