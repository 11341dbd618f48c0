"""Executor: the streaming commit point (fail, restart, continue, buffer), hedging, cancel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from dispatcher.breakers import BreakerBoard
from dispatcher.events import (
    AttemptFailed,
    AttemptStarted,
    Completed,
    Delta,
    Failed,
    Reset,
)
from dispatcher.executor import Executor
from dispatcher.providers.base import (
    Finish,
    ProviderRequest,
    StreamEvent,
    TextChunk,
    UsageUpdate,
)
from modelroute.domain import Action, ErrorClass, ModelRef, StreamingMode
from modelroute.errors import ProviderError
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
CUT = [("text", "Hello "), ("text", "wor"), ("error", EC.OVERLOADED)]


def _text(events: Sequence[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


async def test_fail_mode_ends_partial_after_text_was_sent() -> None:
    provs = providers()
    provs["p1"].script("alpha", CUT)
    ex = Executor(make_config(), provs)
    events = await collect(ex, make_plan(["alpha", "beta"], mode=StreamingMode.FAIL))
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.partial and failed.error_class == EC.OVERLOADED
    (af,) = of_type(events, AttemptFailed)
    assert af.next == Action.STOP
    assert provs["p2"].calls == []
    assert _text(events) == "Hello wor"


async def test_failover_before_any_text_is_invisible_in_every_mode() -> None:
    for mode in StreamingMode:
        provs = providers()
        provs["p1"].script("alpha", [("error", EC.OVERLOADED)])
        events = await collect(
            Executor(make_config(), provs), make_plan(["alpha", "beta"], mode=mode)
        )
        assert of_type(events, Reset) == []
        assert isinstance(events[-1], Completed) and _text(events) == "Paris."


async def test_restart_mode_resets_then_runs_next_hop_from_scratch() -> None:
    provs = providers()
    provs["p1"].script("alpha", CUT)
    ex = Executor(make_config(), provs)
    events = await collect(ex, make_plan(["alpha", "beta"], mode=StreamingMode.RESTART))
    (reset,) = of_type(events, Reset)
    assert reset.discarded_chars == len("Hello wor")
    i = events.index(reset)
    assert _text(events[i:]) == "Paris."
    assert provs["p2"].calls[0].assistant_prefix is None
    assert isinstance(events[-1], Completed) and events[-1].model.name == "beta"


async def test_continue_mode_passes_the_partial_answer_as_prefix() -> None:
    provs = providers()
    provs["p1"].script("alpha", CUT)
    provs["p2"].script("beta", [("text", "ld!"), ("finish", "stop")])
    ex = Executor(make_config(), provs)
    plan = make_plan(["alpha", "beta"], mode=StreamingMode.CONTINUE, continuation=True)
    events = await collect(ex, plan)
    assert of_type(events, Reset) == []
    assert provs["p2"].calls[0].assistant_prefix == "Hello wor"
    assert _text(events) == "Hello world!"
    assert isinstance(events[-1], Completed)


async def test_continue_mode_restarts_where_the_hop_cannot_continue() -> None:
    provs = providers()
    provs["p1"].script("alpha", CUT)
    ex = Executor(make_config(), provs)
    plan = make_plan(["alpha", "beta"], mode=StreamingMode.CONTINUE, continuation=False)
    events = await collect(ex, plan)
    assert len(of_type(events, Reset)) == 1
    assert provs["p2"].calls[0].assistant_prefix is None


async def test_buffer_mode_sends_nothing_until_an_attempt_completes() -> None:
    provs = providers()
    provs["p1"].script("alpha", CUT)
    ledger = FakeLedger()
    ex = Executor(make_config(), provs, ledger=ledger)
    events = await collect(ex, make_plan(["alpha", "beta"], mode=StreamingMode.BUFFER))
    deltas = of_type(events, Delta)
    assert [d.text for d in deltas] == ["Paris."]  # one atomic delta, from the serving attempt
    assert of_type(events, Reset) == []
    assert events.index(deltas[0]) == len(events) - 2
    assert isinstance(events[-1], Completed)
    # The cut attempt is still charged: it produced output tokens.
    assert ledger.attempts[0].output_tokens > 0 and ledger.attempts[0].cost_usd > 0


async def test_hedge_starts_after_delay_and_first_text_wins() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("sleep", 5.0), ("text", "slow"), ("finish", "stop")])
    ledger = FakeLedger()
    ex = Executor(make_config(hedge_after_ms=30), provs, ledger=ledger)
    events = await collect(ex, make_plan(["alpha", "beta"]))
    started = of_type(events, AttemptStarted)
    assert [(s.model.name, s.hedge) for s in started] == [("alpha", False), ("beta", True)]
    done = events[-1]
    assert isinstance(done, Completed) and done.hedged and done.model.name == "beta"
    assert _text(events) == "Paris."
    assert provs["p1"].cancelled == 1
    outcomes = {(a.model, a.outcome, a.hedge) for a in ledger.attempts}
    assert outcomes == {("alpha", "cancelled", False), ("beta", "ok", True)}
    # Both are charged: the loser for its prompt.
    assert all(a.cost_usd > 0 for a in ledger.attempts)
    assert ledger.requests[0].hedged


async def test_hedge_sibling_failure_leaves_the_other_running() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("sleep", 0.2), ("text", "late"), ("finish", "stop")])
    provs["p2"].script("beta", [("error", EC.OVERLOADED)])
    ex = Executor(make_config(hedge_after_ms=20), provs)
    events = await collect(ex, make_plan(["alpha", "beta", "gamma"]))
    (af,) = of_type(events, AttemptFailed)
    assert af.model.name == "beta"
    done = events[-1]
    assert isinstance(done, Completed) and done.model.name == "alpha"
    assert provs["p3"].calls == []


async def test_client_hanging_up_cancels_the_attempt_without_tripping_its_breaker() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("text", "a"), ("hang",)])
    ledger = FakeLedger()
    board = BreakerBoard(fail_max=1, reset_timeout_s=60)
    ex = Executor(make_config(), provs, ledger=ledger, breakers=board)
    run = await ex.start(make_input(), make_plan(["alpha", "beta"]))

    async def consume() -> None:
        async for ev in run.events():
            if isinstance(ev, Delta):
                consumed.set()

    consumed = asyncio.Event()
    task = asyncio.create_task(consume())
    await consumed.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert provs["p1"].cancelled == 1
    assert board.is_available(ModelRef("p1", "alpha"))
    (row,) = ledger.requests
    assert (row.outcome, row.error_class, row.partial) == ("failed", "cancelled", True)
    assert ledger.attempts[0].outcome == "cancelled"


async def test_breaker_open_hop_is_skipped() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("error", EC.OVERLOADED)])
    board = BreakerBoard(fail_max=1, reset_timeout_s=60)
    ex = Executor(make_config(), provs, breakers=board)
    await collect(ex, make_plan(["alpha", "beta"]))
    assert not board.is_available(ModelRef("p1", "alpha"))
    events = await collect(ex, make_plan(["alpha", "beta"]))
    started = of_type(events, AttemptStarted)
    assert [s.model.name for s in started] == ["beta"]
    assert len(provs["p1"].calls) == 1


async def test_total_deadline_stops_a_running_stream() -> None:
    provs = providers()
    provs["p1"].script("alpha", [("text", "a"), ("hang",)])
    ex = Executor(make_config(), provs)
    events = await collect(ex, make_plan(["alpha"], total_ms=100, typical_ttft_ms=1))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.error_class == EC.DEADLINE_EXCEEDED
    assert failed.partial
    assert provs["p1"].cancelled == 1


class _SlowTail:
    """A provider whose stream, after its Finish, takes until ``release`` to close (like the
    end of an HTTP body that arrives after the end marker)."""

    name = "p1"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.closed = 0

    async def stream(self, req: ProviderRequest) -> AsyncIterator[StreamEvent]:
        try:
            yield TextChunk("Paris.")
            yield UsageUpdate(20, 2)
            yield Finish("stop")
        finally:
            await self.release.wait()
            self.closed += 1

    async def aclose(self) -> None:
        return None


async def test_finished_attempt_closes_its_stream_after_the_run_without_a_cancel() -> None:
    """The run neither waits for nor cancels what a finished stream reads after its end; the
    breaker records the success at the Finish (a cancelled close used to make it neutral)."""
    tail = _SlowTail()
    board = BreakerBoard(fail_max=5, reset_timeout_s=60)
    alpha = ModelRef("p1", "alpha")
    for _ in range(2):
        with contextlib.suppress(ProviderError), board.guard(alpha):
            raise ProviderError(EC.OVERLOADED, "down")
    assert board.snapshot()[0].fail_count == 2
    ex = Executor(make_config(), {"p1": tail}, breakers=board)
    events = await asyncio.wait_for(collect(ex, make_plan(["alpha"])), 5)
    assert isinstance(events[-1], Completed)
    assert tail.closed == 0  # still reading the end of its response
    assert board.snapshot()[0].fail_count == 0
    tail.release.set()
    await asyncio.wait_for(ex.drain(), 5)
    assert tail.closed == 1


class _Pusher:
    """A provider that pushes its events (``stream_into``), as the lean HTTP/1.1 adapter does."""

    name = "p1"
    pushes = True

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang

    async def stream(self, req: ProviderRequest) -> AsyncIterator[StreamEvent]:
        raise AssertionError("a pushing provider is not pulled")
        yield Finish("stop")  # pragma: no cover

    async def stream_into(self, req: ProviderRequest, emit: Callable[[StreamEvent], None]) -> None:
        if self.hang:
            await asyncio.Event().wait()
        for ev in (TextChunk("Par"), TextChunk("is."), UsageUpdate(20, 2), Finish("stop")):
            emit(ev)
            await asyncio.sleep(0)
        emit(TextChunk("after the end"))  # dropped: nothing counts after the Finish

    async def aclose(self) -> None:
        return None


async def test_pushed_events_are_streamed_and_nothing_after_the_finish() -> None:
    ex = Executor(make_config(), {"p1": _Pusher()})
    events = await collect(ex, make_plan(["alpha"]))
    assert "".join(d.text for d in of_type(events, Delta)) == "Paris."
    done = events[-1]
    assert isinstance(done, Completed) and done.usage.output_tokens == 2


async def test_a_pushing_provider_silent_past_the_ttft_deadline_times_out() -> None:
    provs: dict[str, Any] = {**providers(), "p1": _Pusher(hang=True)}
    board = BreakerBoard(fail_max=1, reset_timeout_s=60)
    ex = Executor(make_config(), provs, breakers=board)
    events = await collect(ex, make_plan(["alpha", "beta"], ttft_ms=50))
    (af,) = of_type(events, AttemptFailed)
    assert af.error_class == EC.TIMEOUT and af.model.name == "alpha"
    done = events[-1]
    assert isinstance(done, Completed) and done.model.name == "beta"
    assert not board.is_available(ModelRef("p1", "alpha"))  # a silent endpoint trips
