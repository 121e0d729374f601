"""The retry schedule: doubling, capped, jittered within bounds, finite."""

from __future__ import annotations

import itertools

import pytest

from voicedesk.session.backoff import backoff_delays


def test_delays_double_up_to_the_cap_and_stop_after_the_last_try() -> None:
    delays = list(backoff_delays(tries=7, first_s=1, cap_s=10, jitter=0))
    assert delays == [1, 2, 4, 8, 10, 10, 10]


def test_jitter_spreads_each_delay_within_its_share_and_never_past_the_cap() -> None:
    low = list(backoff_delays(tries=4, first_s=1, cap_s=5, jitter=0.2, rand=lambda: 0.0))
    high = list(backoff_delays(tries=4, first_s=1, cap_s=5, jitter=0.2, rand=lambda: 0.999999))
    assert low == pytest.approx([0.8, 1.6, 3.2, 4.0])
    assert high == pytest.approx([1.2, 2.4, 4.8, 5.0], rel=1e-5)


def test_real_randomness_stays_inside_the_bounds() -> None:
    for delay, base in zip(backoff_delays(tries=6, jitter=0.5), [1, 2, 4, 8, 16, 30], strict=True):
        assert base * 0.5 <= delay <= min(30, base * 1.5)


def test_no_tries_means_no_delay_and_nonsense_is_refused() -> None:
    assert list(backoff_delays(tries=0)) == []
    with pytest.raises(ValueError, match="factor >= 1"):
        list(itertools.islice(backoff_delays(factor=0.5), 1))
