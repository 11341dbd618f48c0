"""Walking the fallback chain: which hop is next, and what an error class leads to.

A hop is skipped when its provider has no adapter or is out for this request (auth failed, or
rate limited with retries spent: a backup on the same provider shares the limit), when its
context window is too small after an overflow, when a kill switch or an open breaker stops it,
when its typical time to first token no longer fits the deadline, or when the remaining budget
cannot pay its prompt.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from dispatcher.backoff import fits
from dispatcher.budget import output_allowance, price_for
from modelroute.config_schema import DEFAULT_ACTIONS
from modelroute.domain import Action, ErrorClass, Hop
from modelroute.errors import ProviderError

if TYPE_CHECKING:
    from dispatcher.attempt import Attempt
    from dispatcher.events import Failed
    from dispatcher.run import Run

SIM_HEADER_PREFIX = "x-sim-"
DEFAULT_TOKEN_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Step:
    """What follows a failed attempt: the action, a backoff before it, and the hop it runs."""

    action: Action
    delay_s: float = 0.0
    hop: Hop | None = None


class Walk:
    def __init__(self, run: Run) -> None:
        # A proxy, not a reference: the run owns its walk, and a cycle between them would leave
        # every finished request to the cyclic collector (long pauses under load).
        self.run = cast("Run", weakref.proxy(run))
        self.chain = run.plan.chain
        self.pos = 0
        self.excluded: set[str] = set()
        self.min_context = 0
        self.retries: dict[int, int] = {}
        self.last_error: tuple[ErrorClass, str] | None = None
        self.skipped: dict[str, str] = {}
        self.next_hop: Hop | None = None
        self._headers: Mapping[str, str] | None = None

    def tried(self, hop: Hop) -> None:
        self.pos = max(self.pos, self.chain.index(hop) + 1)

    def pick(self) -> Hop | None:
        """The first fit hop after those already tried."""
        for hop in self.chain[self.pos :]:
            reason = self.unfit(hop)
            if reason is None:
                return hop
            self.skipped[str(hop.model)] = reason
        return None

    def unfit(self, hop: Hop) -> str | None:
        ex = self.run.ex
        provider = hop.model.provider
        if provider not in ex.providers:
            return "no adapter for provider"
        if provider in self.excluded:
            return "provider out for this request"
        if hop.context_window and hop.context_window < self.min_context:
            return "context window too small"
        if ex.kills.for_endpoint(hop.model) is not None:
            return "kill switch"
        if not ex.breakers.is_available(hop.model):
            return "breaker open"
        if self.run.remaining_s() * 1000 <= hop.typical_ttft_ms:
            return "cannot meet the deadline"
        price = price_for(ex.config, hop.model)
        left = self.run.max_cost_usd - self.run.spent_usd()
        if output_allowance(left, price, self.run.prompt_tokens, 1) is None:
            return "budget"
        return None

    def policy(self, hop: Hop, ec: ErrorClass) -> tuple[Action, int]:
        p = hop.policy_for(ec)
        if p is not None:
            return p.action, p.max_retries
        for q in self.run.ex.config.error_actions:
            if q.error_class == ec:
                return q.action, q.max_retries
        return DEFAULT_ACTIONS.get(ec, (Action.FAIL_OVER, 0))

    def stops(self, att: Attempt, err: ProviderError) -> bool:
        return self.policy(att.hop, err.error_class)[0] == Action.STOP

    def on_error(self, att: Attempt, err: ProviderError) -> Step:
        ec = err.error_class
        self.last_error = (ec, err.message)
        action, max_retries = self.policy(att.hop, ec)
        provider = att.model.provider
        if ec == ErrorClass.AUTH:
            self.excluded.add(provider)
        if action == Action.RETRY:
            step = self._retry(att, err, max_retries)
            if step is not None:
                return step
            if ec == ErrorClass.RATE_LIMITED:
                self.excluded.add(provider)
            action = Action.FAIL_OVER
        if action == Action.FAIL_OVER_LONGER_CONTEXT:
            self.min_context = max(self.min_context, att.hop.context_window + 1)
        if action == Action.STOP:
            return Step(Action.STOP)
        self.next_hop = self.pick()
        if self.next_hop is None:
            return Step(Action.STOP)
        return Step(action, 0.0, self.next_hop)

    def _retry(self, att: Attempt, err: ProviderError, max_retries: int) -> Step | None:
        key = self.chain.index(att.hop)
        n = self.retries.get(key, 0)
        if n >= max_retries or self.unfit(att.hop) is not None:
            return None
        ex = self.run.ex
        delay = ex.options.backoff.delay(n, err.retry_after_s, ex.rng)
        if not fits(delay, self.run.remaining_s(), att.hop.typical_ttft_ms / 1000):
            return None
        self.retries[key] = n + 1
        self.next_hop = att.hop
        return Step(Action.RETRY, delay, att.hop)

    def nothing_left(self) -> Failed:
        if self.last_error is not None:
            return self.run.fail(*self.last_error)
        why = "; ".join(f"{m}: {r}" for m, r in self.skipped.items()) or "empty chain"
        return self.run.fail(ErrorClass.NO_HOP_AVAILABLE, f"every hop was skipped ({why})")

    def token_limit(self, hop: Hop) -> int:
        limits = [
            hop.max_output_tokens,
            self.run.plan.budget.max_output_tokens,
            self.run.inp.max_output_tokens or 0,
        ]
        positive = [x for x in limits if x > 0]
        return min(positive) if positive else DEFAULT_TOKEN_LIMIT

    def extra_headers(self) -> Mapping[str, str]:
        """Simulator fault headers from request metadata, only when the dispatcher allows it."""
        if self._headers is None:
            self._headers = {}
            if self.run.ex.options.allow_sim_headers:
                self._headers = {
                    k.lower(): v
                    for k, v in self.run.inp.metadata.items()
                    if k.lower().startswith(SIM_HEADER_PREFIX)
                }
        return self._headers
