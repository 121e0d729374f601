"""The queue between the event loop (agent audio arrives) and the speaker callback.

``push`` and ``barge_in`` run on the event loop's thread, ``pull`` in PortAudio's
callback; a lock held for a few list operations is the only shared state, so the
callback never waits on anything slow.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from voicedesk.audio.codec import Int16Array


class PlaybackBuffer:
    """int16 mono samples at the speaker's rate, waiting to be played."""

    def __init__(self, fade_samples: int) -> None:
        self._lock = threading.Lock()
        self._chunks: deque[Int16Array] = deque()
        self._head = 0  # samples of _chunks[0] already played
        self._queued = 0
        self._fade = np.linspace(1.0, 0.0, max(1, fade_samples), dtype=np.float32)

    @property
    def queued_samples(self) -> int:
        with self._lock:
            return self._queued

    def push(self, samples: Int16Array) -> None:
        if samples.size == 0:
            return
        with self._lock:
            self._chunks.append(samples)
            self._queued += samples.size

    def pull(self, count: int) -> tuple[Int16Array, int]:
        """``count`` samples to play now (silence-padded) and how many were real audio."""
        out = np.zeros(count, dtype=np.int16)
        with self._lock:
            filled = self._take_into(out)
        return out, filled

    def barge_in(self) -> None:
        """Drop everything queued except a short fade-out of what plays next, so the
        speaker goes quiet within a callback or two without a click."""
        upcoming = np.zeros(self._fade.size, dtype=np.int16)
        with self._lock:
            taken = self._take_into(upcoming)
            self._reset()
            if taken:
                faded = upcoming[:taken].astype(np.float32) * self._fade[:taken]
                self._chunks.append(faded.astype(np.int16))
                self._queued = taken

    def clear(self) -> None:
        with self._lock:
            self._reset()

    def _take_into(self, out: Int16Array) -> int:
        """Move queued samples into ``out`` (lock held); how many there were."""
        filled = 0
        while filled < out.size and self._chunks:
            chunk = self._chunks[0]
            take = min(out.size - filled, chunk.size - self._head)
            out[filled : filled + take] = chunk[self._head : self._head + take]
            filled += take
            self._head += take
            if self._head >= chunk.size:
                self._chunks.popleft()
                self._head = 0
        self._queued -= filled
        return filled

    def _reset(self) -> None:
        self._chunks.clear()
        self._head = 0
        self._queued = 0
