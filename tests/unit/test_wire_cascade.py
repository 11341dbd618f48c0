"""Wire conversion of a plan's cascade (both directions) and its validation."""

from __future__ import annotations

import dataclasses

import pytest

from engine.service import Engine
from modelroute.config import load_config
from modelroute.domain import Cascade, DecideInput, Decision, Message, Role, TaskType
from modelroute.errors import InvalidInput
from modelroute.v1 import engine_pb2
from modelroute.wire import decision_from_pb, decision_to_pb
from tests.unit.fakes import FakeRouter, FakeTaskSignal, FixedTask


def _decision() -> Decision:
    from engine.signals.tokens import TokenCounter

    eng = Engine(
        load_config(),
        tokens=TokenCounter(),
        task=FakeTaskSignal(FixedTask(TaskType.MATH, 0.75)),
        router=FakeRouter(0.3, {"gpt-4-1106-preview": 0.875}),
    )
    inp = DecideInput(messages=(Message(Role.USER, "What is 12 * 13?"),), tier="standard")
    return eng.decide(inp)


def _round_trip(d: Decision) -> Decision:
    wire = engine_pb2.Decision.FromString(decision_to_pb(d).SerializeToString())
    return decision_from_pb(wire)


def test_cascade_round_trips() -> None:
    d = dataclasses.replace(_decision(), cascade=Cascade(0, 0.625, "answer-shape-v1"))
    assert len(d.chain) >= 2
    back = _round_trip(d)
    assert back.cascade == Cascade(0, 0.625, "answer-shape-v1")
    assert back.chain == d.chain


def test_plan_without_cascade_stays_without() -> None:
    d = dataclasses.replace(_decision(), cascade=None)
    pb = decision_to_pb(d)
    assert not pb.HasField("cascade")
    assert _round_trip(d).cascade is None


def test_cascade_needs_a_hop_to_escalate_to() -> None:
    d = _decision()
    last = len(d.chain) - 1
    pb = decision_to_pb(dataclasses.replace(d, cascade=Cascade(last, 0.5, "v")))
    with pytest.raises(InvalidInput) as e:
        decision_from_pb(engine_pb2.Decision.FromString(pb.SerializeToString()))
    assert "cascade" in str(e.value)
