"""Engine.decide: validation names the field; signals and policy produce a whole plan."""

from __future__ import annotations

import pytest

from engine.service import Engine, describe
from engine.signals.tokens import TokenCounter
from modelroute.config import load_config
from modelroute.domain import DecideInput, Message, Overrides, Role, StreamingMode, TaskType
from modelroute.errors import InvalidInput
from tests.unit.fakes import FakeRouter, FakeTaskSignal, FixedTask


@pytest.fixture()
def engine() -> Engine:
    return Engine(
        load_config(),
        tokens=TokenCounter(),
        task=FakeTaskSignal(FixedTask(TaskType.CODE)),
        router=FakeRouter(0.6, {"gpt-4-1106-preview": 0.9}),
    )


def _inp(text: str = "Write a function that reverses a list.", **kw: object) -> DecideInput:
    base: dict[str, object] = {"messages": (Message(Role.USER, text),)}
    base.update(kw)
    return DecideInput(**base)  # type: ignore[arg-type]


def test_decision_is_whole(engine: Engine) -> None:
    d = engine.decide(_inp(request_id="r1", tenant="acme"))
    assert d.request_id == "r1" and d.decision_id and d.tier == "premium"
    assert d.model == d.chain[0].model
    assert d.policy_version == engine.cfg.version and d.policy_hash == engine.cfg.content_hash
    assert d.streaming_mode == StreamingMode.CONTINUE
    assert d.signals.task == TaskType.CODE and d.signals.difficulty == 0.6
    assert d.signals.input_tokens > 5
    assert len(d.signals.candidates) == len(engine.cfg.models)
    assert d.decision_time_us > 0 and d.reason
    assert describe(d)["model"] == str(d.model)


def test_task_hint_skips_the_classifier(engine: Engine) -> None:
    d = engine.decide(_inp(task_hint=TaskType.TRANSLATION))
    assert d.signals.task == TaskType.TRANSLATION and d.signals.task_from_hint
    assert d.signals.task_confidence == 1.0


@pytest.mark.parametrize(
    ("inp", "field"),
    [
        (DecideInput(messages=()), "messages"),
        (_inp("   "), "messages[0].content"),
        (_inp(tier="gold"), "tier"),
        (_inp(max_output_tokens=0), "max_output_tokens"),
        (_inp(max_output_tokens=10**9), "max_output_tokens"),
        (_inp(overrides=Overrides(max_cost_usd=-1.0)), "overrides.max_cost_usd"),
        (_inp(overrides=Overrides(max_cost_usd=float("nan"))), "overrides.max_cost_usd"),
        (_inp(overrides=Overrides(latency_sla_ms=10**9)), "overrides.latency_sla_ms"),
        (_inp(overrides=Overrides(allowed_models=("gpt-9",))), "overrides.allowed_models[0]"),
        (_inp("word " * 150_000, tier="premium"), "messages"),
    ],
)
def test_bad_input_names_the_field(engine: Engine, inp: DecideInput, field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        engine.decide(inp)
    assert e.value.field == field


def test_unknown_tenant_rejected_only_when_enforced() -> None:
    cfg = load_config()
    eng = Engine(
        cfg,
        tokens=TokenCounter(),
        task=FakeTaskSignal(FixedTask(TaskType.OPEN_QA)),
        router=FakeRouter(),
    )
    assert eng.decide(_inp(tenant="stranger")).tier == cfg.default_tier
    strict = Engine(
        type(cfg)(
            **{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "enforce_tenants": True}
        ),
        tokens=TokenCounter(),
        task=FakeTaskSignal(FixedTask(TaskType.OPEN_QA)),
        router=FakeRouter(),
    )
    with pytest.raises(InvalidInput) as e:
        strict.decide(_inp(tenant="stranger"))
    assert e.value.field == "tenant"
    assert strict.decide(_inp(tenant="acme")).tier == "premium"
