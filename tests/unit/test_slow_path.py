"""The slow-path router runs when the tier's policy asks, off the loop, and sheds load."""

from __future__ import annotations

import dataclasses

import pytest

from engine.service import Engine
from engine.signals.tokens import TokenCounter
from engine.slow_path import SlowPath
from modelroute.config import Config, load_config
from modelroute.domain import DecideInput, Message, Role, TaskType
from modelroute.errors import ConfigError
from tests.unit.fakes import FakeRouter, FakeSlowRouter, FakeTaskSignal, FixedTask


def _engine(
    task: TaskType = TaskType.SUMMARIZATION, cfg: Config | None = None
) -> tuple[Engine, FakeSlowRouter]:
    slow = FakeSlowRouter(difficulty=0.93)
    engine = Engine(
        cfg or load_config(),
        tokens=TokenCounter(),
        task=FakeTaskSignal(FixedTask(task)),
        router=FakeRouter(0.2),
        slow=slow,
    )
    return engine, slow


def _inp(tier: str) -> DecideInput:
    return DecideInput(
        messages=(Message(Role.USER, "Summarize this paragraph, please."),), tier=tier
    )


async def test_batch_tier_re_decides_with_the_slow_router() -> None:
    engine, slow = _engine()
    d = await SlowPath(engine).decide(_inp("batch"))
    assert slow.calls == 1 and d.signals.difficulty == pytest.approx(0.93)
    assert d.reason.endswith("slow-path router (sentence embeddings)")


async def test_the_slow_router_is_told_when_the_decision_weighs_the_pair_alone() -> None:
    from engine.service import PairFooting
    from modelroute.domain import Overrides

    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    slow = FakeSlowRouter(difficulty=0.93)
    engine = Engine(
        load_config(), tokens=TokenCounter(), task=FakeTaskSignal(FixedTask(TaskType.SUMMARIZATION)),
        router=FakeRouter(0.2), slow=slow, pair_router=FakeRouter(0.3),
        footing=PairFooting(frozenset({strong, weak}), frozenset({strong, weak, "claude-v2"}), {}),
    )  # fmt: skip
    await SlowPath(engine).decide(_inp("batch"))
    duo = dataclasses.replace(_inp("batch"), overrides=Overrides(allowed_models=(strong, weak)))
    await SlowPath(engine).decide(duo)
    assert slow.pairs == [False, True]
    # the fast decision of a request that weighs the pair alone reads the pair's router
    d = engine.decide(dataclasses.replace(duo, tier="premium"))
    assert d.signals.difficulty == pytest.approx(0.3)
    assert engine.decide(_inp("premium")).signals.difficulty == pytest.approx(0.2)


async def test_fast_tiers_and_math_stay_on_the_fast_path() -> None:
    engine, slow = _engine()
    d = await SlowPath(engine).decide(_inp("premium"))
    assert slow.calls == 0 and d.signals.difficulty == pytest.approx(0.2)
    math_engine, math_slow = _engine(TaskType.MATH)
    await SlowPath(math_engine).decide(_inp("batch"))
    assert math_slow.calls == 0


async def test_threshold_is_the_plans_most_expensive_hop() -> None:
    base = load_config()
    batch = dataclasses.replace(base.tiers["batch"], slow_router_above_usd=100.0)
    engine, _ = _engine(cfg=dataclasses.replace(base, tiers={**base.tiers, "batch": batch}))
    d = engine.decide(_inp("batch"))
    assert not engine.wants_slow(d)
    batch = dataclasses.replace(
        batch, slow_router_above_usd=max(h.estimated_cost_usd for h in d.chain)
    )
    engine, _ = _engine(cfg=dataclasses.replace(base, tiers={**base.tiers, "batch": batch}))
    assert engine.wants_slow(engine.decide(_inp("batch")))


async def test_a_full_slow_path_keeps_the_fast_decision() -> None:
    engine, slow = _engine()
    d = await SlowPath(engine, max_pending=0).decide(_inp("batch"))
    assert slow.calls == 0 and "slow-path router busy" in d.reason


def test_engine_without_slow_router_never_wants_it() -> None:
    engine = Engine(
        load_config(),
        tokens=TokenCounter(),
        task=FakeTaskSignal(FixedTask(TaskType.SUMMARIZATION)),
        router=FakeRouter(0.2),
    )
    assert not engine.wants_slow(engine.decide(_inp("batch")))
    with pytest.raises(RuntimeError, match="no slow-path router"):
        engine.decide_slow(_inp("batch"))


def test_threshold_must_be_non_negative() -> None:
    from modelroute.config import DEFAULT_CONFIG_PATH, parse_config

    raw = DEFAULT_CONFIG_PATH.read_text().replace(
        "slow_router_above_usd = 0.0", "slow_router_above_usd = -1.0"
    )
    with pytest.raises(ConfigError, match=r"tiers\.batch\.slow_router_above_usd"):
        parse_config(raw.encode())
