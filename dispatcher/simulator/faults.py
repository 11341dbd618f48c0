"""Faults the simulator injects: by request header, or drawn at random with configured odds.

Headers (all optional):
    x-sim-fault: NAME            the fault to inject (one of FAULTS)
    x-sim-fault-after: N         chunks sent before stall/cut/malformed/error_event/content_filter
    x-sim-retry-after: S         Retry-After seconds of rate_limit (default 1)
    x-sim-fault-count: K         with x-sim-fault-key: only the first K requests with that key fail
    x-sim-fault-key: KEY
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Faults answered with an HTTP error status before any body.
STATUS_FAULTS: dict[str, int] = {
    "rate_limit": 429,
    "overloaded": 503,
    "anthropic_overloaded": 529,
    "bad_gateway": 502,
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "context_overflow": 400,
    "internal": 500,
}
# Faults that happen inside (or instead of) a 200 response.
STREAM_FAULTS = ("timeout", "stall", "cut", "malformed", "error_event", "content_filter")
FAULTS = (*STATUS_FAULTS, *STREAM_FAULTS)
DEFAULT_FAULT_AFTER = 3
DEFAULT_RETRY_AFTER_S = 1


class FaultSpecError(ValueError):
    """A fault name or probability given on the command line or in a header is wrong."""


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    after_chunks: int = DEFAULT_FAULT_AFTER
    retry_after_s: int = DEFAULT_RETRY_AFTER_S

    @property
    def status(self) -> int | None:
        return STATUS_FAULTS.get(self.name)


def parse_odds(specs: Sequence[str]) -> dict[str, float]:
    """``["overloaded=0.05", "cut=0.01"]`` -> {"overloaded": 0.05, "cut": 0.01}."""
    odds: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or name not in FAULTS:
            raise FaultSpecError(f"fault spec {spec!r}: expected NAME=P with NAME in {FAULTS}")
        try:
            p = float(value)
        except ValueError as e:
            raise FaultSpecError(f"fault spec {spec!r}: {value!r} is not a number") from e
        if not 0.0 <= p <= 1.0:
            raise FaultSpecError(f"fault spec {spec!r}: probability must be in [0, 1]")
        odds[name] = p
    if sum(odds.values()) > 1.0:
        raise FaultSpecError("fault probabilities add up to more than 1")
    return odds


def _int_header(headers: Mapping[str, str], name: str, default: int) -> int:
    raw = headers.get(name)
    if raw is None:
        return default
    try:
        return max(0, int(raw))
    except ValueError as e:
        raise FaultSpecError(f"header {name}: {raw!r} is not an integer") from e


class FaultPicker:
    """Decides each request's fault: header first (subject to fault-count), else random odds."""

    def __init__(self, odds: Mapping[str, float] | None = None, seed: int | None = None) -> None:
        self.odds = dict(odds or {})
        self._rng = random.Random(seed)
        self._seen: dict[str, int] = {}

    def pick(self, headers: Mapping[str, str]) -> Fault | None:
        after = _int_header(headers, "x-sim-fault-after", DEFAULT_FAULT_AFTER)
        retry_after = _int_header(headers, "x-sim-retry-after", DEFAULT_RETRY_AFTER_S)
        name = headers.get("x-sim-fault", "").strip()
        if name:
            if name not in FAULTS:
                raise FaultSpecError(f"header x-sim-fault: unknown fault {name!r}")
            if not self._counted_in(headers):
                return None
            return Fault(name, after, retry_after)
        drawn = self._draw()
        return Fault(drawn, after, retry_after) if drawn else None

    def _counted_in(self, headers: Mapping[str, str]) -> bool:
        """False once K requests with this x-sim-fault-key already got the fault."""
        if "x-sim-fault-count" not in headers:
            return True
        limit = _int_header(headers, "x-sim-fault-count", 0)
        key = headers.get("x-sim-fault-key", "")
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        return seen < limit

    def _draw(self) -> str | None:
        if not self.odds:
            return None
        r = self._rng.random()
        acc = 0.0
        for name, p in self.odds.items():
            acc += p
            if r < acc:
                return name
        return None
