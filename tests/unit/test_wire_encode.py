"""The direct Decision encoder writes exactly what the protobuf message would hold."""

from __future__ import annotations

import dataclasses

import pytest

from engine.factory import build_engine
from engine.service import Engine
from engine.wire_encode import decision_bytes
from modelroute.config import load_config
from modelroute.domain import (
    Budget,
    Candidate,
    Cascade,
    DecideInput,
    Decision,
    Message,
    ModelRef,
    Overrides,
    Role,
    TaskType,
)
from modelroute.errors import ModelrouteError
from modelroute.v1 import engine_pb2
from modelroute.wire import decision_to_pb

PROMPTS = [
    "What is 17 * 23? Show your steps.",
    "Write a Python function that merges two sorted lists.",
    "Résumez ce texte en une phrase : le chat dort sur le canapé.",
    "Translate to German: the weather is nice today.",
    "x" * 5000,
    "日本語の文章を要約してください。" * 40,
]
VARIANTS: list[dict[str, object]] = [
    {"tier": "premium"},
    {"tier": "free"},
    {"tier": "batch"},
    {"tenant": "acme"},
    {"tier": "standard", "max_output_tokens": 40},
    {"tier": "premium", "overrides": Overrides(latency_sla_ms=1)},
    {"tier": "free", "overrides": Overrides(allowed_models=("gpt-3.5-turbo-1106",))},
    {"tier": "premium", "task_hint": TaskType.MATH},
]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return build_engine(load_config())


def _same(d: Decision) -> None:
    got = engine_pb2.Decision.FromString(decision_bytes(d))
    assert got == decision_to_pb(d)


def test_real_decisions_encode_like_the_message(engine: Engine) -> None:
    checked = 0
    for i, text in enumerate(PROMPTS):
        for v in VARIANTS:
            inp = DecideInput(
                messages=(Message(Role.SYSTEM, "Be brief."), Message(Role.USER, text)),
                request_id=f"r{i}",
                **v,  # type: ignore[arg-type]
            )
            try:
                d = engine.decide(inp)
            except ModelrouteError:
                continue
            _same(d)
            checked += 1
    assert checked >= len(PROMPTS) * len(VARIANTS) - 4


def test_edge_values_encode_like_the_message(engine: Engine) -> None:
    d = engine.decide(DecideInput(messages=(Message(Role.USER, "Hello there"),), tier="batch"))
    ref = ModelRef("p", "ü-model")
    edge = dataclasses.replace(
        d,
        decision_id="",
        request_id="ид-1",
        reason="",
        decision_time_us=2**40,
        budget=Budget(0, 2**32 - 1, 0.0, 300, 0),
        cascade=Cascade(first_hop=0, escalate_below=0.0, verifier=""),
        signals=dataclasses.replace(
            d.signals,
            task_confidence=0.0,
            difficulty=1e-50,
            input_tokens=0,
            tenant="",
            task_from_hint=True,
            candidates=(
                Candidate(ref, 0.0, 0.0, 0.0, False, "not allowed"),
                Candidate(ref, 1e-12, 1.0, -3.5, True, ""),
                Candidate(ref, 5.0, 0.5, 1e39, True, ""),
            ),
        ),
    )
    _same(edge)
    _same(dataclasses.replace(d, cascade=None))


def test_a_hop_is_encoded_from_its_own_values_when_its_model_is_shared(engine: Engine) -> None:
    """The static hop cache is keyed by the model object: a hop with the same model and error
    policy objects but other numbers must not reuse the cached bytes (nor break the next one)."""
    d = engine.decide(DecideInput(messages=(Message(Role.USER, "Hello there"),), tier="premium"))
    h = d.chain[0]
    for changed in (
        dataclasses.replace(h, context_window=h.context_window + 1),
        dataclasses.replace(h, typical_ttft_ms=h.typical_ttft_ms + 7),
        dataclasses.replace(h, supports_continuation=not h.supports_continuation),
        dataclasses.replace(h, on_error=tuple(reversed(h.on_error))),
        dataclasses.replace(h, model=ModelRef(h.model.provider, h.model.name)),
    ):
        _same(dataclasses.replace(d, chain=(changed, *d.chain[1:])))
        _same(d)


def test_plans_decoded_from_the_wire_encode_alike_in_their_own_encoder(engine: Engine) -> None:
    """Plans decoded from the wire bring new model objects every time (the dispatcher's case):
    its own encoder rebuilds its tables for each and the engine's encoder keeps its own."""
    from engine import wire_encode
    from modelroute.wire import decision_from_pb

    mine = wire_encode.DecisionEncoder()
    theirs = wire_encode.ENGINE_ENCODER
    plans = [
        engine.decide(DecideInput(messages=(Message(Role.USER, t),), request_id=f"w{i}"))
        for i, t in enumerate(PROMPTS)
    ]
    for d in plans:
        decision_bytes(d)
    table = theirs._table
    for d in plans:
        wired = decision_from_pb(decision_to_pb(d))
        assert wired.model is not d.model
        got = engine_pb2.Decision.FromString(mine.encode(wired))
        assert got == decision_to_pb(d)
        assert engine_pb2.Decision.FromString(mine.encode(d)) == decision_to_pb(d)
    assert theirs._table is table
