"""Backoff: full jitter, Retry-After honoured with a spread, and the deadline check."""

from __future__ import annotations

import random

from dispatcher.backoff import BackoffPolicy, fits


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    p = BackoffPolicy(base_s=0.25, cap_s=2.0)
    rng = random.Random(1)
    for retry, ceiling in [(0, 0.25), (1, 0.5), (2, 1.0), (3, 2.0), (6, 2.0)]:
        draws = [p.delay(retry, None, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # spread over the whole range, not a fixed value


def test_concurrent_retriers_do_not_wait_in_step() -> None:
    p = BackoffPolicy()
    rng = random.Random(2)
    assert len({round(p.delay(1, None, rng), 6) for _ in range(50)}) == 50


def test_retry_after_is_a_floor_with_a_spread_on_top() -> None:
    p = BackoffPolicy(base_s=0.25, retry_after_spread_s=0.5)
    rng = random.Random(3)
    draws = [p.delay(2, 3.0, rng) for _ in range(200)]
    assert all(3.0 <= d <= 3.5 for d in draws)
    assert len({round(d, 6) for d in draws}) > 100


def test_fits_needs_room_for_a_first_token_before_the_deadline() -> None:
    assert fits(1.0, remaining_s=3.0, next_ttft_s=0.5)
    assert not fits(2.6, remaining_s=3.0, next_ttft_s=0.5)
    assert not fits(0.0, remaining_s=0.2, next_ttft_s=0.5)
