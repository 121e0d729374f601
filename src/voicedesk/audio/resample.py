"""Streaming sample-rate conversion (soxr), chunk by chunk with no seams."""

from __future__ import annotations

import numpy as np
import soxr

from voicedesk.audio.codec import Int16Array


class StreamResampler:
    """int16 mono from ``from_rate`` to ``to_rate``, keeping filter state between chunks.

    Not thread-safe: one caller at a time. ``reset()`` forgets the state (after a
    barge-in, so the old reply's tail does not leak into the new one).
    """

    def __init__(self, from_rate: int, to_rate: int, quality: str = "HQ") -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._quality = quality
        self._stream: soxr.ResampleStream | None = None
        self.reset()

    @property
    def passthrough(self) -> bool:
        return self.from_rate == self.to_rate

    def reset(self) -> None:
        self._stream = (
            None
            if self.passthrough
            else soxr.ResampleStream(
                self.from_rate, self.to_rate, 1, dtype="int16", quality=self._quality
            )
        )

    def process(self, samples: Int16Array, last: bool = False) -> Int16Array:
        if self._stream is None:
            return samples
        out = self._stream.resample_chunk(np.ascontiguousarray(samples, dtype=np.int16), last=last)
        return np.asarray(out, dtype=np.int16)
