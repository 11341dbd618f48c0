"""When the policy plans a cascade (cheap hop first, verified) and when it does not."""

from __future__ import annotations

import dataclasses

import pytest

from engine.policy import SignalValues, plan
from engine.verifier import calibrated_thresholds
from modelroute.config import Config, load_config
from modelroute.domain import DecideInput, Message, Overrides, Role, TaskType

PAIR = ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")


@pytest.fixture(scope="module")
def cfg() -> Config:
    """The default policy with the standard tier allowed to cascade."""
    base = load_config()
    tiers = dict(base.tiers)
    tiers["standard"] = dataclasses.replace(base.tiers["standard"], cascade=True)
    return dataclasses.replace(base, tiers=tiers)


def _inp(tier: str = "standard") -> DecideInput:
    return DecideInput(
        messages=(Message(Role.USER, "What is 12 * 13?"),),
        tier=tier,
        overrides=Overrides(allowed_models=PAIR),
    )


def _sig(task: TaskType, weak: float = 0.6, strong: float = 0.9) -> SignalValues:
    return SignalValues(task, 0.9, 0.5, 120, {PAIR[0]: weak, PAIR[1]: strong})


def test_math_on_a_cascade_tier_puts_the_cheap_model_first(cfg: Config) -> None:
    p = plan(cfg, _inp(), _sig(TaskType.MATH))
    assert [h.model.name for h in p.chain] == [PAIR[0], PAIR[1]]
    assert [h.index for h in p.chain] == [0, 1]
    assert p.cascade is not None and p.cascade.first_hop == 0
    name, thresholds = calibrated_thresholds()
    assert p.cascade.verifier == name
    assert p.cascade.escalate_below == thresholds["math"]
    assert "cascade" in p.reason


def test_without_cascade_the_strong_model_leads(cfg: Config) -> None:
    plain = load_config()  # standard tier: cascade = false
    p = plan(plain, _inp(), _sig(TaskType.MATH))
    assert p.cascade is None
    assert p.chain[0].model.name == PAIR[1]
    assert "cascade" not in p.reason


def test_task_without_cascade_gets_none(cfg: Config) -> None:
    p = plan(cfg, _inp(), _sig(TaskType.CLASSIFICATION, weak=0.3, strong=0.95))
    assert p.cascade is None


def test_no_cascade_when_the_cheap_model_is_out_of_reach(cfg: Config) -> None:
    p = plan(cfg, _inp(), _sig(TaskType.MATH, weak=0.2, strong=0.95))
    assert p.cascade is None
    assert p.chain[0].model.name == PAIR[1]


def test_no_cascade_when_the_cheap_model_is_already_chosen(cfg: Config) -> None:
    p = plan(cfg, _inp(), _sig(TaskType.MATH, weak=0.9, strong=0.91))
    assert p.chain[0].model.name == PAIR[0]
    assert p.cascade is None


def test_configured_threshold_overrides_the_calibration(cfg: Config) -> None:
    tasks = dict(cfg.tasks)
    tasks[TaskType.CODE] = dataclasses.replace(cfg.tasks[TaskType.CODE], escalate_below=0.42)
    p = plan(dataclasses.replace(cfg, tasks=tasks), _inp(), _sig(TaskType.CODE))
    assert p.cascade is not None
    assert p.cascade.escalate_below == 0.42


def test_default_policy_enables_cascade_for_math_code_and_the_batch_tier() -> None:
    c = load_config()
    assert c.tasks[TaskType.MATH].cascade and c.tasks[TaskType.CODE].cascade
    assert not c.tasks[TaskType.CLASSIFICATION].cascade
    assert c.tiers["batch"].cascade and not c.tiers["premium"].cascade


def _config_error(old: str, new: str) -> str:
    from modelroute.config import DEFAULT_CONFIG_PATH, parse_config
    from modelroute.errors import ConfigError

    base = DEFAULT_CONFIG_PATH.read_text()
    assert old in base
    with pytest.raises(ConfigError) as e:
        parse_config(base.replace(old, new, 1).encode())
    return e.value.message


def test_cascade_keys_are_validated() -> None:
    batch = "max_hops = 4\ncascade = true\n"
    assert "tiers.batch.cascade: expected bool" in _config_error(
        batch, "max_hops = 4\ncascade = 1\n"
    )
    math = "[tasks.math]\n"
    assert "tasks.math.escalate_below: expected a number in (0, 1)" in _config_error(
        math, math + "escalate_below = 1.5\n"
    )
    assert "tasks.math.cascades: unknown key" in _config_error(math, math + "cascades = true\n")
