"""Backoff for retries at the same hop: exponential with full jitter, honouring Retry-After.

Full jitter (a uniform draw in [0, base * 2**n], capped) spreads concurrent retriers so they do
not hit a recovering provider in step. When the provider sent Retry-After, the wait is at least
that long, plus a jittered spread on top, so callers told "come back in 2 s" do not all return
at exactly 2 s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base_s: float = 0.25
    cap_s: float = 8.0
    # Upper bound of the spread added on top of a Retry-After.
    retry_after_spread_s: float = 0.5

    def delay(self, retry: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(0, retry)))
        if retry_after_s is not None and retry_after_s > 0:
            spread = min(self.retry_after_spread_s, ceiling)
            return retry_after_s + rng.uniform(0.0, spread)
        return rng.uniform(0.0, ceiling)


def fits(delay_s: float, remaining_s: float, next_ttft_s: float) -> bool:
    """Whether waiting ``delay_s`` still leaves room for a first token before the deadline."""
    return delay_s + next_ttft_s < remaining_s
