"""Executor: the walk over the chain and the action taken per error class (fake providers)."""

from __future__ import annotations

import contextlib
import gc
import random
import weakref
from collections.abc import Mapping
from typing import Any

import pytest

from dispatcher.backoff import BackoffPolicy
from dispatcher.events import (
    AttemptFailed,
    AttemptStarted,
    Completed,
    DecisionEvent,
    Delta,
    Failed,
    FinishReason,
    UsageEvent,
)
from dispatcher.executor import Executor, ExecutorOptions, GenerationParams
from dispatcher.providers.base import Provider
from modelroute.domain import Action, ErrorClass, ErrorPolicy, ModelRef
from tests.unit.test_executor_fakes import (
    FakeLedger,
    FakeTime,
    collect,
    make_config,
    make_input,
    make_plan,
    of_type,
    providers,
)

EC = ErrorClass


def _executor(provs: Mapping[str, Provider] | None = None, **kw: Any) -> Executor:
    return Executor(make_config(), provs or providers(), **kw)


async def test_happy_path_event_order_and_ledger() -> None:
    ledger = FakeLedger()
    provs = providers()
    ex = Executor(make_config(), provs, ledger=ledger)
    events = await collect(ex, make_plan(["alpha", "beta"]), params=GenerationParams(0.2))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["DecisionEvent", "AttemptStarted", "Delta", "Delta", "UsageEvent", "Completed"]
    assert isinstance(events[0], DecisionEvent)
    assert "".join(e.text for e in of_type(events, Delta)) == "Paris."
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.finish_reason == FinishReason.STOP
    assert done.model == ModelRef("p1", "alpha")
    assert (done.attempts, done.escalated, done.hedged) == (1, False, False)
    # Provider usage replaces the estimates: 20 in * 1 $/M + 2 out * 2 $/M.
    assert done.usage.input_tokens == 20 and done.usage.output_tokens == 2
    assert abs(done.usage.cost_usd - 24e-6) < 1e-12
    assert provs["p1"].calls[0].temperature == 0.2
    assert len(ledger.requests) == 1 and len(ledger.attempts) == 1
    row = ledger.requests[0]
    assert (row.outcome, row.error_class, row.final_model, row.attempts) == (
        "completed",
        "",
        "alpha",
        1,
    )
    assert ledger.attempts[0].outcome == "ok" and ledger.attempts[0].ttft_ms is not None


async def test_invalid_request_stops_and_never_moves_model() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.INVALID_REQUEST)])
    events = await collect(_executor(provs), make_plan(["alpha", "beta", "gamma"]))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.error_class == EC.INVALID_REQUEST
    assert not failed.partial
    (af,) = of_type(events, AttemptFailed)
    assert af.next == Action.STOP
    assert provs["p2"].calls == [] and provs["p3"].calls == []


async def test_context_overflow_moves_only_to_a_longer_context_hop() -> None:
    provs = providers()
    provs["p2"].script("beta", [("error", EC.CONTEXT_OVERFLOW)])
    # beta (32k) overflows; alpha (8k) and alpha-mini (4k) are skipped; gamma (128k) serves.
    events = await collect(_executor(provs), make_plan(["beta", "alpha", "alpha-mini", "gamma"]))
    done = events[-1]
    assert isinstance(done, Completed) and done.model.name == "gamma" and done.escalated
    assert provs["p1"].calls == []
    (af,) = of_type(events, AttemptFailed)
    assert af.next == Action.FAIL_OVER_LONGER_CONTEXT


async def test_auth_takes_the_provider_out_for_this_request() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.AUTH)])
    events = await collect(_executor(provs), make_plan(["alpha", "alpha-mini", "beta"]))
    done = events[-1]
    assert isinstance(done, Completed) and done.model.name == "beta"
    assert [c.model for c in provs["p1"].calls] == ["alpha"]  # alpha-mini shares p1: skipped


async def test_rate_limited_retries_same_hop_honouring_retry_after() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.RATE_LIMITED, 1.5)], [("error", EC.RATE_LIMITED)])
    t = FakeTime()
    ex = _executor(provs, clock=t.clock, sleep=t.sleep, rng=random.Random(7))
    events = await collect(ex, make_plan(["alpha", "beta"]))
    done = events[-1]
    assert isinstance(done, Completed) and done.model.name == "alpha"
    assert [c.model for c in provs["p1"].calls] == ["alpha"] * 3 and provs["p2"].calls == []
    first, second = of_type(events, AttemptFailed)
    assert first.next == Action.RETRY and second.next == Action.RETRY
    assert t.sleeps[0] >= 1.5  # Retry-After honoured, jitter on top
    assert first.retry_after_ms == int(t.sleeps[0] * 1000)
    assert 0 <= t.sleeps[1] <= BackoffPolicy().base_s * 2  # full jitter, retry 1


async def test_rate_limited_never_waits_past_the_deadline() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.RATE_LIMITED, 60.0)])
    t = FakeTime()
    ex = _executor(provs, clock=t.clock, sleep=t.sleep)
    events = await collect(ex, make_plan(["alpha", "beta"], total_ms=5000))
    assert t.sleeps == []  # a 60 s Retry-After does not fit a 5 s deadline
    (af,) = of_type(events, AttemptFailed)
    assert af.next == Action.FAIL_OVER
    assert isinstance(events[-1], Completed) and events[-1].model.name == "beta"


async def test_rate_limited_failover_skips_backup_sharing_the_limit() -> None:
    provs = providers()
    limited = [("error", EC.RATE_LIMITED, None)]
    provs["p1"].script("alpha", limited, limited, limited)
    t = FakeTime()
    ex = _executor(provs, clock=t.clock, sleep=t.sleep)
    events = await collect(ex, make_plan(["alpha", "alpha-mini", "beta"]))
    assert len(t.sleeps) == 2  # max_retries = 2 by default
    assert [c.model for c in provs["p1"].calls] == ["alpha"] * 3  # alpha-mini never stampeded
    assert isinstance(events[-1], Completed) and events[-1].model.name == "beta"


async def test_overloaded_and_timeout_fail_over_at_once() -> None:
    for ec in (EC.OVERLOADED, EC.TIMEOUT):
        provs = providers()
        provs["p1"].script("alpha", [("error", ec)])
        t = FakeTime()
        ex = _executor(provs, clock=t.clock, sleep=t.sleep)
        events = await collect(ex, make_plan(["alpha", "beta"]))
        assert t.sleeps == [] and len(provs["p1"].calls) == 1
        (af,) = of_type(events, AttemptFailed)
        assert af.next == Action.FAIL_OVER and af.error_class == ec
        assert isinstance(events[-1], Completed) and events[-1].model.name == "beta"


async def test_internal_retries_once_then_fails_over() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.INTERNAL)], [("error", EC.INTERNAL)])
    t = FakeTime()
    ex = _executor(provs, clock=t.clock, sleep=t.sleep)
    events = await collect(ex, make_plan(["alpha", "beta"]))
    nexts = [e.next for e in of_type(events, AttemptFailed)]
    assert nexts == [Action.RETRY, Action.FAIL_OVER]
    assert len(provs["p1"].calls) == 2 and len(provs["p2"].calls) == 1
    done = events[-1]
    assert isinstance(done, Completed) and done.attempts == 3


async def test_hop_policy_overrides_the_default_action() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.OVERLOADED)])
    stop = (ErrorPolicy(EC.OVERLOADED, Action.STOP),)
    events = await collect(_executor(provs), make_plan(["alpha", "beta"], on_error=stop))
    assert isinstance(events[-1], Failed) and events[-1].error_class == EC.OVERLOADED
    assert provs["p2"].calls == []


async def test_content_filter_finish_and_content_policy_error() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("text", "x"), ("finish", "content_filter")])
    events = await collect(_executor(provs), make_plan(["alpha"]))
    assert isinstance(events[-1], Completed)
    assert events[-1].finish_reason == FinishReason.CONTENT_FILTER
    provs["p1"].script("alpha", [("error", EC.CONTENT_POLICY)])
    events = await collect(_executor(provs), make_plan(["alpha", "beta"]))
    assert isinstance(events[-1], Failed) and events[-1].error_class == EC.CONTENT_POLICY


async def test_last_error_is_reported_when_the_chain_runs_out() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.OVERLOADED)])
    provs["p2"].script("beta", [("error", EC.TIMEOUT)])
    events = await collect(_executor(provs), make_plan(["alpha", "beta"]))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.error_class == EC.TIMEOUT
    assert failed.attempts == 2
    assert [e.next for e in of_type(events, AttemptFailed)] == [
        Action.FAIL_OVER,
        Action.STOP,
    ]


async def test_no_hop_available_when_every_hop_is_skipped() -> None:
    # No adapter for p3 in this executor: the only hop is unfit.
    provs = providers()
    del provs["p3"]
    events = await collect(_executor(provs), make_plan(["gamma"]))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.error_class == EC.NO_HOP_AVAILABLE
    assert "no adapter" in failed.message and failed.attempts == 0


async def test_hops_that_cannot_meet_the_deadline_are_skipped() -> None:
    provs = providers()
    plan = make_plan(["alpha", "beta"], total_ms=2000, typical_ttft_ms=5000)
    events = await collect(_executor(provs), plan)
    assert isinstance(events[-1], Failed) and events[-1].error_class == EC.NO_HOP_AVAILABLE
    assert provs["p1"].calls == [] and provs["p2"].calls == []


async def test_an_adapter_bug_fails_the_attempt_not_the_stream() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("crash",)])
    events = await collect(_executor(provs), make_plan(["alpha", "beta"]))
    (af,) = of_type(events, AttemptFailed)
    assert af.error_class == EC.INTERNAL
    assert isinstance(events[-1], Completed)


async def test_ttft_deadline_abandons_a_silent_hop_and_escalates() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("hang",)])
    ledger = FakeLedger()
    ex = Executor(make_config(), provs, ledger=ledger)
    events = await collect(ex, make_plan(["alpha", "beta"], ttft_ms=50))
    (af,) = of_type(events, AttemptFailed)
    assert af.error_class == EC.TIMEOUT and af.next == Action.FAIL_OVER
    done = events[-1]
    assert isinstance(done, Completed) and done.model.name == "beta" and done.escalated
    assert provs["p1"].cancelled == 1
    assert [a.outcome for a in ledger.attempts] == ["failed", "ok"]
    assert ledger.requests[0].escalated


async def test_usage_events_report_running_totals() -> None:
    provs = providers()
    provs["p1"].script(
        "alpha", [("usage", 10, 0), ("text", "a"), ("usage", 10, 5), ("finish", "stop")]
    )
    events = await collect(_executor(provs), make_plan(["alpha"]))
    usages = [e.usage for e in of_type(events, UsageEvent)]
    assert [(u.input_tokens, u.output_tokens) for u in usages] == [(10, 0), (10, 5)]


async def test_sim_headers_pass_only_when_allowed() -> None:
    from tests.unit.test_executor_fakes import make_input

    inp = make_input()
    inp.metadata["x-sim-fault"] = "overloaded"
    inp.metadata["other"] = "v"
    for allowed, expect in ((False, {}), (True, {"x-sim-fault": "overloaded"})):
        provs = providers()
        ex = Executor(make_config(), provs, options=ExecutorOptions(allow_sim_headers=allowed))
        await collect(ex, make_plan(["alpha"]), inp)
        assert dict(provs["p1"].calls[0].extra_headers) == expect


async def test_attempt_started_precedes_each_attempt() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.OVERLOADED)])
    events = await collect(_executor(provs), make_plan(["alpha", "beta"]))
    started = of_type(events, AttemptStarted)
    assert [(s.attempt, s.hop, s.model.name) for s in started] == [
        (1, 0, "alpha"),
        (2, 1, "beta"),
    ]


async def test_first_request_goes_out_before_the_plan_reaches_the_caller() -> None:
    """Writing an event waits for the transport; the provider's time to first token is the
    longest wait, so the first attempt's request is on its way when the plan is handed out."""
    provs = providers()
    run = await _executor(provs).start(make_input(), make_plan(["alpha", "beta"]))
    events = run.events()
    first = await anext(events)
    assert isinstance(first, DecisionEvent)
    assert [c.model for c in provs["p1"].calls] == ["alpha"]
    rest = [ev async for ev in events]
    assert isinstance(rest[0], AttemptStarted)
    assert isinstance(rest[-1], Completed) and len(provs["p1"].calls) == 1


async def test_a_caller_gone_after_the_plan_cancels_the_started_attempt() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("hang",)])
    ledger = FakeLedger()
    run = await _executor(provs, ledger=ledger).start(make_input(), make_plan(["alpha"]))
    events = run.events()
    assert isinstance(await anext(events), DecisionEvent)
    await events.aclose()
    assert provs["p1"].cancelled == 1
    assert [r.outcome for r in ledger.requests] == ["failed"]
    assert ledger.requests[0].error_class == "cancelled"


@pytest.mark.parametrize("scripted", [False, True])
async def test_a_finished_run_is_freed_without_the_cycle_collector(scripted: bool) -> None:
    """Nothing of a finished request may wait for the cyclic collector: under load its
    collections of such garbage stalled the event loop for tens of milliseconds."""
    provs = providers()
    if scripted:  # a failover, so the walk and a second attempt are used too
        provs["p1"].script("alpha", [("error", EC.OVERLOADED)])
    ex = _executor(provs)
    gc.collect()
    gc.disable()
    try:
        run = await ex.start(make_input(), make_plan(["alpha", "beta"]))
        kinds = [type(ev).__name__ async for ev in run.events()]
        ref = weakref.ref(run)
        del run
        assert ref() is None, "the run is still referenced (a cycle) after it finished"
    finally:
        gc.enable()
    assert kinds[-1] == "Completed"


class _BrokenBreakers:
    """A breaker board with a bug: the executor must still end the stream properly."""

    def is_available(self, endpoint: ModelRef) -> bool:
        raise RuntimeError("bug")

    def guard(self, endpoint: ModelRef) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


async def test_a_dispatcher_bug_still_ends_with_one_terminal_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = FakeLedger()
    ex = Executor(make_config(), providers(), breakers=_BrokenBreakers(), ledger=ledger)
    events = await collect(ex, make_plan(["alpha"]))
    assert isinstance(events[0], DecisionEvent)  # the plan first, also when picking a hop fails
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.error_class == EC.INTERNAL
    assert "capital of France" not in caplog.text  # no prompt text in the log
    assert "executor bug" in caplog.text
    assert ledger.requests[0].error_class == "internal"
