"""How long to wait before each new try: a pure, injectable backoff schedule.

Doubling delays (1 s, 2 s, 4 s, ...) up to a cap, each spread by a little jitter so that
many clients cut off by the same outage do not all come back in the same second. The
schedule is finite: it yields one delay per try and then stops, so a caller's ``for``
loop is also its limit on tries. Randomness is injected, so tests see exact numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

__all__ = ["backoff_delays"]


def backoff_delays(
    *,
    tries: int = 5,
    first_s: float = 1.0,
    factor: float = 2.0,
    cap_s: float = 30.0,
    jitter: float = 0.1,
    rand: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Yield ``tries`` delays in seconds: ``first_s * factor**k`` capped at ``cap_s``.

    Each delay is moved by up to ``jitter`` of itself either way (``rand`` returns a
    number in [0, 1), as :func:`random.random`); the result never exceeds ``cap_s``.
    """
    if tries < 0 or first_s < 0 or factor < 1 or cap_s < 0 or not 0 <= jitter <= 1:
        raise ValueError("backoff needs tries >= 0, delays >= 0, factor >= 1 and jitter in [0, 1]")
    delay = first_s
    for _ in range(tries):
        base = min(delay, cap_s)
        yield min(cap_s, base * (1 + jitter * (2 * rand() - 1)))
        delay *= factor
