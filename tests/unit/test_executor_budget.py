"""Executor: cost budgets stopping running streams, tenant spend windows, kill switches."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.budget import estimate_prompt_tokens
from dispatcher.events import AttemptStarted, Completed, Delta, Event, Failed, FinishReason
from dispatcher.executor import Executor
from dispatcher.killswitch import KillScope, KillSwitchBoard
from dispatcher.state import InMemorySpendStore
from modelroute.domain import ErrorClass, StreamingMode
from modelroute.errors import BudgetRejected, Killed
from tests.unit.test_executor_fakes import (
    FakeLedger,
    collect,
    make_config,
    make_input,
    make_plan,
    of_type,
    providers,
)

EC = ErrorClass
# What the test prompt costs on alpha (1 $/M in, 2 $/M out) by the dispatcher's own estimate.
PROMPT_USD = estimate_prompt_tokens(make_input().messages, None) * 1e-6
RUNAWAY = [("text", "abcdefgh")] * 20 + [("finish", "stop")]  # ~2 tokens per chunk


async def test_max_tokens_is_capped_from_the_remaining_budget() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("text", "ok"), ("finish", "length")])
    ex = Executor(make_config(), provs)
    events = await collect(ex, make_plan(["alpha"], max_cost=PROMPT_USD + 8e-6))
    assert provs["p1"].calls[0].max_tokens == 4  # 8e-6 USD / 2e-6 USD per output token
    done = events[-1]
    assert isinstance(done, Completed) and done.finish_reason == FinishReason.BUDGET


async def test_budget_stops_a_running_stream_in_streaming_tiers() -> None:
    provs = providers()
    provs["p1"].script("alpha", RUNAWAY)
    ledger = FakeLedger()
    ex = Executor(make_config(), provs, ledger=ledger)
    events = await collect(ex, make_plan(["alpha"], max_cost=PROMPT_USD + 8e-6))
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.error_class == EC.BUDGET_EXCEEDED and failed.partial
    assert len(of_type(events, Delta)) == 2  # the chunk that crossed the budget is not sent
    assert failed.usage.cost_usd > PROMPT_USD + 8e-6  # ... but it is charged
    assert ledger.attempts[0].outcome == "cancelled"
    assert ledger.attempts[0].error_class == "budget_exceeded"
    assert provs["p1"].cancelled == 1


async def test_budget_truncates_in_buffering_tiers() -> None:
    provs = providers()
    provs["p1"].script("alpha", RUNAWAY)
    ex = Executor(make_config(), provs)
    plan = make_plan(["alpha"], max_cost=PROMPT_USD + 8e-6, mode=StreamingMode.BUFFER)
    events = await collect(ex, plan)
    done = events[-1]
    assert isinstance(done, Completed) and done.finish_reason == FinishReason.BUDGET
    assert [d.text for d in of_type(events, Delta)] == ["abcdefgh" * 2]


async def test_prompt_that_no_hop_can_afford_is_rejected_up_front() -> None:
    provs = providers()
    ex = Executor(make_config(), provs)
    with pytest.raises(BudgetRejected):
        await ex.start(make_input(), make_plan(["alpha", "beta"], max_cost=PROMPT_USD / 2))
    assert provs["p1"].calls == []


async def test_cheaper_hop_serves_when_primary_is_unaffordable() -> None:
    provs = providers()
    ex = Executor(make_config(), provs)
    # gamma's prompt alone costs 120e-6; alpha fits.
    events = await collect(ex, make_plan(["gamma", "alpha"], max_cost=50e-6))
    assert [s.model.name for s in of_type(events, AttemptStarted)] == ["alpha"]


async def test_tenant_spend_window_rejects_once_spent() -> None:
    provs = providers()
    store = InMemorySpendStore()
    ex = Executor(make_config(tenant_limit=0.00003), provs, spend=store)
    await collect(ex, make_plan(["alpha"]))  # costs 24e-6 (provider usage 20 in, 2 out)
    await ex.drain()
    assert abs(await store.spent("t1", 3600) - 24e-6) < 1e-12
    with pytest.raises(BudgetRejected, match="t1"):
        await ex.start(make_input(), make_plan(["alpha"]))


async def test_spend_windows_roll_over() -> None:
    now = [7200.0]
    store = InMemorySpendStore(clock=lambda: now[0])
    await store.add("t", 5.0, 3600)
    assert await store.spent("t", 3600) == 5.0
    now[0] += 3600
    assert await store.spent("t", 3600) == 0.0


@pytest.mark.parametrize(("scope", "value"), [(KillScope.TIER, "std"), (KillScope.TENANT, "t1")])
async def test_kill_switch_stops_new_requests_at_once(scope: KillScope, value: str) -> None:
    kills = KillSwitchBoard()
    provs = providers()
    ex = Executor(make_config(), provs, kills=kills)
    kills.set(scope, value, True, "incident")
    with pytest.raises(Killed):
        await ex.start(make_input(), make_plan(["alpha"]))
    kills.set(scope, value, False)
    await collect(ex, make_plan(["alpha"]))
    assert len(provs["p1"].calls) == 1


async def test_killed_provider_or_model_is_skipped_or_refused() -> None:
    kills = KillSwitchBoard()
    provs = providers()
    ex = Executor(make_config(), provs, kills=kills)
    kills.set(KillScope.MODEL, "alpha", True)
    events = await collect(ex, make_plan(["alpha", "beta"]))
    assert [s.model.name for s in of_type(events, AttemptStarted)] == ["beta"]
    kills.set(KillScope.PROVIDER, "p2", True)
    with pytest.raises(Killed):
        await ex.start(make_input(), make_plan(["alpha", "beta"]))


async def _run_until_text_then_kill(ex: Executor, kills: KillSwitchBoard, plan: object) -> Event:
    run = await ex.start(make_input(), plan)  # type: ignore[arg-type]
    events = run.events()
    async for ev in events:
        if isinstance(ev, Delta):
            break
    kills.set(KillScope.PROVIDER, "p1", True, "provider incident")
    async with asyncio.timeout(1.0):  # the contract: in-flight streams stop within a second
        rest = [ev async for ev in events]
    return rest[-1]


async def test_kill_switch_stops_an_in_flight_stream_within_a_second() -> None:
    kills = KillSwitchBoard()
    provs = providers()
    provs["p1"].script("alpha", [("text", "a"), ("hang",)])
    ledger = FakeLedger()
    ex = Executor(make_config(), provs, kills=kills, ledger=ledger)
    last = await _run_until_text_then_kill(ex, kills, make_plan(["alpha", "beta"]))
    assert isinstance(last, Failed) and last.error_class == EC.KILLED and last.partial
    assert provs["p1"].cancelled == 1
    assert provs["p2"].calls == []
    assert ledger.requests[0].error_class == "killed"


async def test_kill_switch_interrupts_a_backoff_wait() -> None:
    kills = KillSwitchBoard()
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.RATE_LIMITED, 30.0)])
    ex = Executor(make_config(), provs, kills=kills)
    run = await ex.start(make_input(), make_plan(["alpha"], total_ms=120000))
    events = run.events()
    async for ev in events:
        if isinstance(ev, AttemptStarted):
            break
    asyncio.get_running_loop().call_later(0.05, kills.set, KillScope.TIER, "std", True)
    async with asyncio.timeout(1.0):
        rest = [ev async for ev in events]
    assert isinstance(rest[-1], Failed) and rest[-1].error_class == EC.KILLED
