"""The executor: carries one routing plan out against providers and streams domain events.

``Executor.start`` does the up-front checks (kill switches, tenant spend, a prompt that no hop
can afford) and raises ``Killed`` / ``BudgetRejected`` before anything streams; ``Run.events``
then yields a ``DecisionEvent``, attempt/delta/usage/reset events and exactly one terminal
event (``Completed`` or ``Failed``), also when a kill switch, a budget or a bug ends the run.
A caller that stops iterating (client gone) cancels the attempts; the ledger still gets the
request, recorded as failed with ERROR_CLASS_CANCELLED.

The walk over ``plan.chain``, per-error-class actions and the streaming commit point live in
``dispatcher.run``; this module holds the wiring and the up-front checks.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dispatcher.attempt import Breakers, NoBreakers
from dispatcher.backoff import BackoffPolicy
from dispatcher.budget import estimate_prompt_tokens, output_allowance, price_for
from dispatcher.killswitch import KillSwitchBoard
from dispatcher.ledger.store import LedgerStore
from dispatcher.providers.base import Provider
from dispatcher.state import InMemorySpendStore, SpendStore
from modelroute.config import Config
from modelroute.domain import DecideInput, Decision
from modelroute.errors import BudgetRejected, InvalidInput, Killed

if TYPE_CHECKING:
    from dispatcher.cascade import Scorer
    from dispatcher.run import Run


@dataclass(frozen=True, slots=True)
class GenerationParams:
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    # Pass request metadata keys starting with "x-sim-" to providers as HTTP headers (simulator
    # fault injection). Off by default: callers must not steer provider traffic.
    allow_sim_headers: bool = False
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    # Scores a cascade's held answer; None loads the shipped verifier on first use.
    verifier: Scorer | None = None


class Executor:
    def __init__(
        self,
        config: Config,
        providers: Mapping[str, Provider],
        *,
        breakers: Breakers | None = None,
        kills: KillSwitchBoard | None = None,
        spend: SpendStore | None = None,
        ledger: LedgerStore | None = None,
        options: ExecutorOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.providers = providers
        self.breakers: Breakers = breakers if breakers is not None else NoBreakers()
        self.kills = kills if kills is not None else KillSwitchBoard()
        self.spend: SpendStore = spend if spend is not None else InMemorySpendStore()
        self.ledger = ledger
        self.options = options or ExecutorOptions()
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._background: set[asyncio.Task[Any]] = set()

    async def start(
        self, inp: DecideInput, plan: Decision, params: GenerationParams | None = None
    ) -> Run:
        """Check what can be refused up front; return the run that streams the events."""
        from dispatcher.run import Run

        if not plan.chain:
            raise InvalidInput("plan.chain", "must name at least one hop")
        sw = self.kills.for_request(plan.tier, plan.tenant or inp.tenant)
        if sw is not None:
            raise Killed(f"kill switch on {sw.scope.label} {sw.value!r}")
        if all(self.kills.for_endpoint(h.model) is not None for h in plan.chain):
            raise Killed("every model of the plan is stopped by a kill switch")
        max_cost = await self._max_cost(inp, plan)
        prompt_tokens = estimate_prompt_tokens(inp.messages, None)
        if not any(
            output_allowance(max_cost, price_for(self.config, h.model), prompt_tokens, 1)
            for h in plan.chain
        ):
            narrowed = max_cost < plan.budget.max_cost_usd or plan.budget.max_cost_usd <= 0
            where = f" (left in tenant {plan.tenant or inp.tenant!r}'s window)" if narrowed else ""
            raise BudgetRejected(f"no hop can afford the prompt within {max_cost:.6f} USD{where}")
        return Run(self, inp, plan, params or GenerationParams(), max_cost, prompt_tokens)

    async def _max_cost(self, inp: DecideInput, plan: Decision) -> float:
        """The request's cost ceiling: the plan's budget, narrowed by the tenant's window."""
        cap = plan.budget.max_cost_usd if plan.budget.max_cost_usd > 0 else math.inf
        tenant = self.config.tenants.get(plan.tenant or inp.tenant)
        if tenant is None or tenant.spend_limit_usd is None:
            return cap
        spent = await self.spend.spent(tenant.name, tenant.spend_window_s)
        left = tenant.spend_limit_usd - spent
        if left <= 0:
            raise BudgetRejected(f"tenant {tenant.name!r} reached its spend limit for this window")
        return min(cap, left)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run bookkeeping off the request path (kept referenced until done)."""
        self.keep(asyncio.get_running_loop().create_task(coro))

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold ``task`` until it is done, and let ``drain`` wait for it."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work (spend charges, finished attempts reading the end of their
        response) to finish."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
