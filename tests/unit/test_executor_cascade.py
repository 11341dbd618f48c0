"""Executor: confidence escalation (cascade) with fake providers and a fake verifier."""

from __future__ import annotations

import dataclasses
import gc
import threading
import weakref
from collections.abc import Sequence

from dispatcher import cascade as cascade_mod
from dispatcher.events import (
    AttemptFailed,
    AttemptStarted,
    Completed,
    Delta,
    Escalated,
    Event,
    Reset,
)
from dispatcher.executor import Executor, ExecutorOptions
from dispatcher.killswitch import KillScope
from modelroute.domain import Cascade, Decision, ErrorClass, StreamingMode
from tests.unit.test_executor_fakes import (
    FakeLedger,
    FakeProvider,
    collect,
    make_config,
    make_input,
    make_plan,
    of_type,
    providers,
)

CHEAP = [("text", "Maybe "), ("text", "Lyon."), ("usage", 20, 3), ("finish", "stop")]


class FixedScorer:
    """A verifier that returns one confidence and records what it read (and on which thread)."""

    def __init__(self, confidence: float) -> None:
        self.value = confidence
        self.seen: list[tuple[str, str, str]] = []
        self.threads: list[int] = []

    def confidence(self, prompt: str, answer: str, task: str = "general") -> float:
        self.seen.append((prompt, answer, task))
        self.threads.append(threading.get_ident())
        return self.value


def _plan(mode: StreamingMode = StreamingMode.RESTART, below: float = 0.6) -> Decision:
    base = make_plan(["alpha", "beta"], mode=mode)
    return dataclasses.replace(base, cascade=Cascade(0, below, "fake"))


def _text(events: Sequence[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


def _executor(
    scorer: FixedScorer, ledger: FakeLedger | None = None
) -> tuple[Executor, dict[str, FakeProvider]]:
    provs = providers()
    provs["p1"].script("alpha", CHEAP)
    ex = Executor(make_config(), provs, ledger=ledger, options=ExecutorOptions(verifier=scorer))
    return ex, provs


async def test_confident_answer_is_released_without_escalation() -> None:
    scorer = FixedScorer(0.9)
    ledger = FakeLedger()
    ex, provs = _executor(scorer, ledger)
    events = await collect(ex, _plan())
    assert _text(events) == "Maybe Lyon."
    assert len(of_type(events, Delta)) == 1  # held back, then released in one piece
    assert of_type(events, Escalated) == []
    assert provs["p2"].calls == []
    done = events[-1]
    assert isinstance(done, Completed) and done.model.name == "alpha" and not done.escalated
    assert scorer.seen == [("What is the capital of France?", "Maybe Lyon.", "open_qa")]
    (req,) = ledger.requests
    assert not req.escalated
    assert [a.outcome for a in ledger.attempts] == ["ok"]


async def test_unconfident_answer_escalates_and_the_client_never_sees_it() -> None:
    scorer = FixedScorer(0.2)
    ledger = FakeLedger()
    ex, provs = _executor(scorer, ledger)
    events = await collect(ex, _plan())
    (esc,) = of_type(events, Escalated)
    assert (esc.attempt, esc.hop, esc.model.name) == (1, 0, "alpha")
    assert esc.confidence == 0.2 and esc.threshold == 0.6
    assert "Lyon" not in _text(events)
    assert _text(events) == "Paris."
    assert of_type(events, Reset) == [] and of_type(events, AttemptFailed) == []
    started = of_type(events, AttemptStarted)
    assert [s.model.name for s in started] == ["alpha", "beta"]
    assert events.index(esc) < events.index(started[1])
    done = events[-1]
    assert isinstance(done, Completed) and done.model.name == "beta" and done.escalated
    assert done.attempts == 2
    (req,) = ledger.requests
    assert req.escalated and req.attempts == 2
    cheap, strong = ledger.attempts
    assert (cheap.outcome, strong.outcome) == ("escalated", "ok")
    assert cheap.cost_usd > 0 and strong.cost_usd > 0
    assert req.cost_usd == cheap.cost_usd + strong.cost_usd
    assert len(provs["p2"].calls) == 1


async def test_escalated_hop_streams_in_the_plans_own_mode() -> None:
    ex, provs = _executor(FixedScorer(0.1))
    provs["p2"].script("beta", [("text", "Pa"), ("text", "ris."), ("finish", "stop")])
    events = await collect(ex, _plan(mode=StreamingMode.RESTART))
    deltas = of_type(events, Delta)
    assert [d.text for d in deltas] == ["Pa", "ris."]
    assert all(d.attempt == 2 for d in deltas)


async def test_at_the_threshold_the_answer_is_released() -> None:
    ex, _ = _executor(FixedScorer(0.6))
    events = await collect(ex, _plan(below=0.6))
    assert of_type(events, Escalated) == []
    assert _text(events) == "Maybe Lyon."


async def test_error_in_the_cheap_attempt_follows_the_error_actions() -> None:
    scorer = FixedScorer(0.9)
    provs = providers()
    provs["p1"].script("alpha", [("text", "Ma"), ("error", ErrorClass.OVERLOADED)])
    ex = Executor(make_config(), provs, options=ExecutorOptions(verifier=scorer))
    events = await collect(ex, _plan())
    (af,) = of_type(events, AttemptFailed)
    assert af.model.name == "alpha"
    assert of_type(events, Reset) == []  # nothing of the held attempt reached the client
    assert of_type(events, Escalated) == [] and scorer.seen == []
    assert _text(events) == "Paris."


async def test_nothing_to_escalate_to_releases_the_held_answer() -> None:
    ex, _ = _executor(FixedScorer(0.1))
    ex.kills.set(KillScope.MODEL, "beta", True, "test")
    events = await collect(ex, _plan())
    assert of_type(events, Escalated) == []
    assert _text(events) == "Maybe Lyon."
    assert isinstance(events[-1], Completed) and events[-1].model.name == "alpha"


async def test_long_answers_are_scored_off_the_event_loop() -> None:
    scorer = FixedScorer(0.1)
    provs = providers()
    long = "step " * (cascade_mod.INLINE_MAX_CHARS // 4)
    provs["p1"].script("alpha", [("text", long), ("finish", "stop")])
    ex = Executor(make_config(), provs, options=ExecutorOptions(verifier=scorer))
    events = await collect(ex, _plan())
    assert scorer.threads and scorer.threads[0] != threading.get_ident()
    assert len(of_type(events, Escalated)) == 1
    assert long.strip() not in _text(events)


async def test_a_failing_verifier_escalates() -> None:
    class Broken:
        def confidence(self, prompt: str, answer: str, task: str = "general") -> float:
            raise ValueError("broken")

    provs = providers()
    provs["p1"].script("alpha", CHEAP)
    ex = Executor(make_config(), provs, options=ExecutorOptions(verifier=Broken()))
    events = await collect(ex, _plan())
    (esc,) = of_type(events, Escalated)
    assert esc.confidence == 0.0
    assert _text(events) == "Paris."


def test_escalated_event_converts_to_the_wire() -> None:
    from dispatcher.service import event_to_pb
    from modelroute.domain import ModelRef

    e = Escalated(1, 0, ModelRef("p1", "alpha"), 0.25, 0.5)
    pb = event_to_pb(e, 4, "r-9")
    assert pb.WhichOneof("event") == "escalated"
    assert (pb.seq, pb.request_id) == (4, "r-9")
    w = pb.escalated
    assert (w.attempt, w.hop, w.model.provider, w.model.name) == (1, 0, "p1", "alpha")
    assert (w.confidence, w.threshold) == (0.25, 0.5)


async def test_an_escalated_run_is_freed_without_the_cycle_collector() -> None:
    """The cascade step refers to its run without a cycle (see test_executor's twin)."""
    ex, _ = _executor(FixedScorer(0.2))
    gc.collect()
    gc.disable()
    try:
        run = await ex.start(make_input(), _plan())
        kinds = [type(ev).__name__ async for ev in run.events()]
        assert run.cascade is not None
        ref = weakref.ref(run)
        del run
        assert ref() is None, "the run is still referenced (a cycle) after it finished"
    finally:
        gc.enable()
    assert "Escalated" in kinds and kinds[-1] == "Completed"
