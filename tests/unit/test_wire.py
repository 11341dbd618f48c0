"""Wire conversion keeps every field of a plan and a request."""

from __future__ import annotations

import pytest

from engine.service import Engine
from modelroute.config import load_config
from modelroute.domain import DecideInput, Message, Overrides, Role, TaskType
from modelroute.errors import InvalidInput
from modelroute.v1 import engine_pb2
from modelroute.wire import (
    decide_input_from_pb,
    decide_input_to_pb,
    decision_from_pb,
    decision_to_pb,
)
from tests.unit.fakes import FakeRouter, FakeTaskSignal, FixedTask


def _engine() -> Engine:
    from engine.signals.tokens import TokenCounter

    return Engine(
        load_config(),
        tokens=TokenCounter(),
        task=FakeTaskSignal(FixedTask(TaskType.MATH, 0.75)),
        router=FakeRouter(0.3, {"gpt-4-1106-preview": 0.875}),
    )


def test_decision_round_trips() -> None:
    inp = DecideInput(
        messages=(Message(Role.USER, "What is 12 * 13?"),), request_id="w1", tier="standard"
    )
    d = _engine().decide(inp)
    pb = decision_to_pb(d)
    back = decision_from_pb(engine_pb2.Decision.FromString(pb.SerializeToString()))
    assert back.chain == d.chain
    assert back.budget == d.budget
    assert back.model == d.model and back.streaming_mode == d.streaming_mode
    assert (back.decision_id, back.request_id, back.reason, back.tier) == (
        d.decision_id,
        d.request_id,
        d.reason,
        d.tier,
    )
    assert (
        back.signals.task == d.signals.task and back.signals.input_tokens == d.signals.input_tokens
    )
    assert [c.model for c in back.signals.candidates] == [c.model for c in d.signals.candidates]
    assert [c.eligible for c in back.signals.candidates] == [
        c.eligible for c in d.signals.candidates
    ]
    assert (
        back.signals.candidates[0].estimated_cost_usd == d.signals.candidates[0].estimated_cost_usd
    )


def test_request_round_trips() -> None:
    inp = DecideInput(
        messages=(Message(Role.SYSTEM, "be brief"), Message(Role.USER, "hi", name="ann")),
        request_id="r",
        tenant="acme",
        tier="premium",
        task_hint=TaskType.CODE,
        max_output_tokens=77,
        overrides=Overrides(latency_sla_ms=900, max_cost_usd=0.5, allowed_models=("claude-v2",)),
        metadata={"k": "v"},
    )
    assert decide_input_from_pb(decide_input_to_pb(inp)) == inp


def test_plan_without_hops_or_mode_is_invalid() -> None:
    with pytest.raises(InvalidInput) as e:
        decision_from_pb(engine_pb2.Decision())
    assert e.value.field == "plan.chain"
    pb = decision_to_pb(_engine().decide(DecideInput(messages=(Message(Role.USER, "x"),))))
    pb.streaming_mode = 0  # type: ignore[assignment]
    with pytest.raises(InvalidInput) as e:
        decision_from_pb(pb)
    assert e.value.field == "plan.streaming_mode"
