"""engine.wire_decode.decide_input is modelroute.wire.decide_input_from_pb, built faster."""

from __future__ import annotations

import itertools

import pytest

from engine.wire_decode import decide_input
from modelroute.domain import DecideInput, Message, Overrides, Role, TaskType
from modelroute.errors import InvalidInput
from modelroute.v1 import engine_pb2
from modelroute.wire import decide_input_from_pb, decide_input_to_pb


def _requests() -> list[engine_pb2.DecideRequest]:
    """Every combination of optional parts: names, hints, caps, overrides, metadata."""
    out = []
    message_sets = [
        (Message(Role.USER, "hi"),),
        (Message(Role.SYSTEM, "be brief"), Message(Role.USER, "hi", name="ann")),
        (Message(Role.USER, "a"), Message(Role.ASSISTANT, "b"), Message(Role.TOOL, "c", "t")),
    ]
    overrides = [
        Overrides(),
        Overrides(latency_sla_ms=900),
        Overrides(max_cost_usd=0.5, allowed_models=("claude-v2", "gpt-4-1106-preview")),
    ]
    for msgs, hint, cap, ov, meta in itertools.product(
        message_sets, (None, TaskType.CODE), (None, 77), overrides, ({}, {"k": "v"})
    ):
        inp = DecideInput(msgs, "r1", "acme", "premium", hint, cap, ov, meta)
        out.append(decide_input_to_pb(inp))
    out.append(engine_pb2.DecideRequest())  # nothing set: no messages (the engine rejects it)
    return out


def test_equal_to_the_definition_on_every_shape() -> None:
    reqs = _requests()
    assert len(reqs) == 73
    for req in reqs:
        fast, ref = decide_input(req), decide_input_from_pb(req)
        assert fast == ref
        assert type(fast) is DecideInput
        assert all(type(m) is Message for m in fast.messages)


def test_overrides_without_values_are_kept_as_empty_overrides() -> None:
    req = engine_pb2.DecideRequest(tier="premium")
    req.messages.add(role=2, content="hi")
    req.overrides.SetInParent()
    assert decide_input(req).overrides == Overrides() == decide_input_from_pb(req).overrides


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: setattr(r.messages[0], "role", 0), "messages[0].role"),
        (lambda r: setattr(r.messages[0], "role", 99), "messages[0].role"),
        (lambda r: setattr(r, "task_hint", 99), "task_hint"),
    ],
)
def test_bad_enums_raise_the_definitions_error(mutate: object, field: str) -> None:
    req = engine_pb2.DecideRequest(tier="premium")
    req.messages.add(role=2, content="hi")
    mutate(req)  # type: ignore[operator]
    with pytest.raises(InvalidInput) as fast:
        decide_input(req)
    with pytest.raises(InvalidInput) as ref:
        decide_input_from_pb(req)
    assert fast.value.field == ref.value.field == field
    assert fast.value.message == ref.value.message


def test_pin_fields_refuses_another_order() -> None:
    from engine.fields import pin_fields

    assert pin_fields(Message, ("role", "content", "name"), "m") == ("role", "content", "name")
    with pytest.raises(ImportError, match="Message fields are now"):
        pin_fields(Message, ("content", "role", "name"), "m")
