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
        filled = 0
        with self._lock:
            while filled < count and self._chunks:
                chunk = self._chunks[0]
                take = min(count - filled, chunk.size - self._head)
                out[filled : filled + take] = chunk[self._head : self._head + take]
                filled += take
                self._head += take
                if self._head >= chunk.size:
                    self._chunks.popleft()
                    self._head = 0
            self._queued -= filled
        return out, filled

    def barge_in(self) -> None:
        """Drop everything queued except a short fade-out of what plays next, so the
        speaker goes quiet within a callback or two without a click."""
        with self._lock:
            upcoming = np.zeros(0, dtype=np.int16)
            need = self._fade.size
            parts: list[Int16Array] = []
            head = self._head
            for chunk in self._chunks:
                part = chunk[head : head + need - sum(p.size for p in parts)]
                head = 0
                parts.append(part)
                if sum(p.size for p in parts) >= need:
                    break
            if parts:
                upcoming = np.concatenate(parts)
            faded = (upcoming.astype(np.float32) * self._fade[: upcoming.size]).astype(np.int16)
            self._chunks.clear()
            self._head = 0
            self._queued = 0
            if faded.size:
                self._chunks.append(faded)
                self._queued = faded.size

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._head = 0
            self._queued = 0
