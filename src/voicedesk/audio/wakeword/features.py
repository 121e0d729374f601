"""Log mel filterbank energies: the embedding model's input, in numpy alone.

The model was trained on the features of the ``python_speech_features`` recipe that
EfficientWord-Net uses (its ``logfbank`` with ``nfilt=64``, ``nfft=512``, no
pre-emphasis): 25 ms rectangular frames every 10 ms, the power spectrum
``|FFT|² / 512``, 64 triangular mel filters whose edges are whole FFT bins, and the
natural log. A 1.5 s window (24,000 samples) gives 149 frames, the last one
zero-padded. This module computes the same numbers: embeddings of
the same window agree with EfficientWord-Net's own pipeline to a cosine of 0.9999+.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000
FRAME_SAMPLES = 400  # 25 ms
STEP_SAMPLES = 160  # 10 ms
FFT_SIZE = 512
MEL_FILTERS = 64

# The recipe replaces exact zeros with float64's epsilon before the log. The model is
# sensitive even to those bins (a floor of 1e-10 instead moved embeddings of quiet
# windows by a cosine of 0.02), so the same floor is kept. Digital silence (padding, a
# muted microphone) therefore sits at log(eps) = -36, far below any microphone's noise:
# references are built with a little noise under the padding (see reference.py).
ENERGY_FLOOR = float(np.finfo(np.float64).eps)

FloatArray = npt.NDArray[np.float32]


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    filters: int = MEL_FILTERS, fft_size: int = FFT_SIZE, rate: int = SAMPLE_RATE
) -> npt.NDArray[np.float64]:
    """``filters`` x ``fft_size // 2 + 1`` triangles, equally spaced in mel from 0 Hz to
    Nyquist, their corners rounded down to FFT bins (the recipe's ``get_filterbanks``)."""
    edges_mel = np.linspace(0.0, float(_hz_to_mel(np.array(rate / 2.0))), filters + 2)
    bins = np.floor((fft_size + 1) * _mel_to_hz(edges_mel) / rate).astype(np.int64)
    bank = np.zeros((filters, fft_size // 2 + 1))
    for j in range(filters):
        left, centre, right = bins[j], bins[j + 1], bins[j + 2]
        rising = np.arange(left, centre)
        bank[j, rising] = (rising - left) / (centre - left)
        falling = np.arange(centre, right)
        bank[j, falling] = (right - falling) / (right - centre)
    return bank


def _sparse_filterbank() -> tuple[
    npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.intp]
]:
    """The filterbank as (bin, weight) pairs grouped by filter, and where each group starts.

    Applying it with a gather and ``np.add.reduceat`` avoids a BLAS call: OpenBLAS runs a
    149 x 257 x 64 product on several threads, which then spin on the other cores."""
    filters, bins = np.nonzero(mel_filterbank())
    weights = mel_filterbank()[filters, bins]
    starts = np.searchsorted(filters, np.arange(MEL_FILTERS))
    return bins, weights, starts


_BINS, _WEIGHTS, _FILTER_STARTS = _sparse_filterbank()


def frame_count(samples: int) -> int:
    """How many 10 ms frames ``samples`` samples make (the last one zero-padded)."""
    if samples <= FRAME_SAMPLES:
        return 1
    return 1 + -(-(samples - FRAME_SAMPLES) // STEP_SAMPLES)


def log_mel(audio: npt.NDArray[np.floating]) -> FloatArray:
    """Features of mono 16 kHz ``audio`` (floats, -1..1): ``frames x 64`` float32.

    Computed in float64 like the recipe: in float32, the power of near-silent bins
    rounds differently and their logs (which the model does look at) drift."""
    signal = np.asarray(audio, dtype=np.float64)
    frames = frame_count(signal.size)
    padded = np.zeros((frames - 1) * STEP_SAMPLES + FRAME_SAMPLES)
    padded[: signal.size] = signal
    windows = np.lib.stride_tricks.sliding_window_view(padded, FRAME_SAMPLES)[::STEP_SAMPLES]
    spectrum = np.fft.rfft(windows, FFT_SIZE)
    power = (spectrum.real**2 + spectrum.imag**2) * (1.0 / FFT_SIZE)
    energies = np.add.reduceat(power[:, _BINS] * _WEIGHTS, _FILTER_STARTS, axis=1)
    return np.log(np.where(energies == 0.0, ENERGY_FLOOR, energies)).astype(np.float32)
