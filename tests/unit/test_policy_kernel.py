"""The C candidate loop gives, model for model, the figures its docstring formula gives."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest

from engine._policy import format_fixed
from engine.policy import (
    MIN_OUTPUT_RESERVE,
    PREFILL_TOKENS_PER_S,
    Plan,
    SignalValues,
    plan,
    plan_reference,
)
from engine.router.prior import prior_quality
from modelroute.config import DEFAULT_CONFIG_PATH, Config, load_config
from modelroute.domain import DecideInput, Message, Overrides, Role, TaskType
from modelroute.errors import ModelrouteError


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config()


def _expected(cfg: Config, inp: DecideInput, sig: SignalValues) -> list[tuple[float, float, bool]]:
    """(cost, quality, eligible) per configured model, straight from the documented formula."""
    tier = cfg.tier_for(inp.tier, inp.tenant)
    ov = inp.overrides
    sla = min(tier.latency_sla_ms, ov.latency_sla_ms or tier.latency_sla_ms)
    max_cost = min(tier.max_cost_usd, ov.max_cost_usd or tier.max_cost_usd)
    allowed = set(tier.allowed_models or cfg.models)
    if ov.allowed_models:
        allowed &= set(ov.allowed_models)
    task = cfg.tasks[sig.task]
    wanted = inp.max_output_tokens or tier.default_max_output_tokens
    t = sig.input_tokens
    out = []
    for m in cfg.models.values():
        n_out = max(
            0, min(task.expected_output_tokens, wanted, m.max_output_tokens, m.context_window - t)
        )
        cost = m.cost_usd(t, n_out)
        q = sig.quality.get(m.router_key)
        if q is None:
            q = prior_quality(m.ability[sig.task], sig.difficulty)
        ok = (
            m.name in allowed
            and t + MIN_OUTPUT_RESERVE <= m.context_window
            and m.ttft_ms + 1000.0 * t / PREFILL_TOKENS_PER_S <= sla
            and m.cost_usd(t, MIN_OUTPUT_RESERVE) <= max_cost
            and cost <= max_cost
        )
        out.append((cost, q, ok))
    return out


def test_candidates_match_the_formula(cfg: Config) -> None:
    known = {"gpt-4-1106-preview": 0.81, "mistralai/Mixtral-8x7B-Instruct-v0.1": 0.42}
    checked = 0
    for tier, task, tokens, diff, ov in itertools.product(
        ["free", "standard", "premium", "batch"],
        [TaskType.CODE, TaskType.SUMMARIZATION, TaskType.MATH],
        [5, 900, 20_000, 150_000],
        [0.0, 0.37, 1.0],
        [Overrides(), Overrides(latency_sla_ms=400, max_cost_usd=0.004)],
    ):
        inp = DecideInput(messages=(Message(Role.USER, "x"),), tier=tier, overrides=ov)
        sig = SignalValues(task, 0.5, diff, tokens, known)
        try:
            p = plan(cfg, inp, sig)
        except ModelrouteError:
            continue
        for c, (cost, q, ok) in zip(p.candidates, _expected(cfg, inp, sig), strict=True):
            assert c.estimated_cost_usd == cost and c.predicted_quality == q, c
            # The SLA may be relaxed for the fastest model when it excludes every one.
            assert c.eligible == ok or "SLA" in p.reason, c
            assert math.isfinite(c.score)
            assert (c.excluded_reason == "") == c.eligible
        checked += 1
    assert checked > 100


def _plan_or_error(fn: object, cfg: Config, inp: DecideInput, sig: SignalValues) -> object:
    try:
        return fn(cfg, inp, sig)  # type: ignore[operator]
    except ModelrouteError as e:
        return (type(e).__name__, str(e))


def test_c_finish_equals_the_python_steps(cfg: Config) -> None:
    """``plan`` (choice, chain, hops and reason in C when there is no cascade) equals
    ``plan_reference`` (all in Python) field for field, over tiers, tasks (cascading or not),
    prompt sizes, difficulties, output caps and overrides that exclude models by SLA, budget and
    allow-list; including the SLA-relaxed and the error outcomes."""
    known = {"gpt-4-1106-preview": 0.81, "mistralai/Mixtral-8x7B-Instruct-v0.1": 0.42}
    names = list(cfg.models)
    outcomes = {"C": 0, "cascade": 0, "error": 0}
    for tier, task, tokens, diff, wanted, ov in itertools.product(
        ["free", "standard", "premium", "batch"],
        [TaskType.CODE, TaskType.SUMMARIZATION, TaskType.MATH, TaskType.OPEN_QA],
        [1, 900, 20_000, 150_000],
        [0.0, 0.37, 1.0],
        [None, 7, 4000],
        [
            Overrides(),
            Overrides(latency_sla_ms=150),
            Overrides(latency_sla_ms=400, max_cost_usd=0.004),
            Overrides(max_cost_usd=0.0002),
            Overrides(allowed_models=tuple(names[:2])),
        ],
    ):
        inp = DecideInput(
            messages=(Message(Role.USER, "x"),),
            tier=tier,
            overrides=ov,
            max_output_tokens=wanted,
        )
        sig = SignalValues(task, 0.456, diff, tokens, known)
        got = _plan_or_error(plan, cfg, inp, sig)
        assert got == _plan_or_error(plan_reference, cfg, inp, sig), (tier, task, tokens, ov)
        if isinstance(got, tuple) and isinstance(got[0], str):
            outcomes["error"] += 1
        else:
            outcomes["cascade" if getattr(got, "cascade", None) else "C"] += 1
    assert min(outcomes.values()) > 20, outcomes


def test_build_equals_the_dataclass_constructor() -> None:
    """``engine._policy.build`` gives what the frozen dataclass's own ``__init__`` gives, and
    the object stays frozen; wrong arity and non-slots classes are refused."""
    import dataclasses

    from engine._policy import build
    from modelroute.domain import Budget, ModelRef, Signals

    values = (TaskType.MATH, 0.5, 0.25, 42, "premium", "acme", 900, (), True)
    got = build(Signals, values)
    assert got == Signals(*values) and hash(got) == hash(Signals(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.tier = "free"  # type: ignore[misc]
    ref = build(ModelRef, ("simulator", "m"))
    assert ref == ModelRef("simulator", "m") and str(ref) == "simulator/m"
    with pytest.raises(TypeError, match="takes 2 values, got 1"):
        build(ModelRef, ("simulator",))

    @dataclasses.dataclass
    class Plain:
        x: int

    with pytest.raises(TypeError, match="fields must be slots"):
        build(Plain, (1,))
    with pytest.raises(TypeError, match="not a dataclass"):
        build(Budget, (1, 2, 3.0, 4, 5))  # a NamedTuple


def test_c_reason_with_long_non_ascii_model_names(tmp_path: Path) -> None:
    """The C reason is written into a buffer sized from the names: a model name of a few KiB
    with non-ASCII letters comes out whole and equal to the Python reason."""
    long_name = "modèle-économique-" * 200 + "claude-instant-v1"
    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8").replace(
        '"claude-instant-v1"', json.dumps(long_name)
    )
    path = tmp_path / "long.toml"
    path.write_text(text, encoding="utf-8")
    long_cfg = load_config(path)
    assert long_name in long_cfg.models
    seen = 0
    for tier, task in itertools.product(["free", "standard", "premium"], list(TaskType)):
        ov = Overrides(allowed_models=(long_name, "gpt-3.5-turbo-1106"))
        inp = DecideInput(messages=(Message(Role.USER, "x"),), tier=tier, overrides=ov)
        quality = {m.router_key: 0.5 for m in long_cfg.models.values() if m.router_key}
        sig = SignalValues(task, 0.5, 0.2, 40, quality)
        got = _plan_or_error(plan, long_cfg, inp, sig)
        assert got == _plan_or_error(plan_reference, long_cfg, inp, sig), (tier, task)
        seen += isinstance(got, Plan) and long_name in got.reason
    assert seen > 5, seen


def _near_ties(digits: int) -> list[float]:
    """Values on and next to the decimal midpoints of ``digits`` places: exact binary ties
    (0.125 at 2 places), and the doubles either side of midpoints that are not exact (0.615)."""
    out = []
    for k in range(3000):
        m = (k + 0.5) / 10**digits
        out += [m, math.nextafter(m, 0.0), math.nextafter(m, math.inf), -m]
    return out


def test_fixed_formatting_equals_printf() -> None:
    """The reason's numbers are written without snprintf: byte for byte what "%.<d>f" gives
    (Python's % formatting rounds the exact binary value half to even, like glibc), on ties,
    near-ties, random values over many scales, signed zeros, tiny and huge values."""
    rng = random.Random(3)
    values = [0.0, -0.0, 5e-324, -5e-324, 1e-300, 0.5, 1.5, 2.5, 0.125, 0.375, 2.675, 9.995]
    values += [1e9, 123456789.123456, 2.0**51, 2.0**53 + 1, 1e300, -1e300]
    values += [math.inf, -math.inf, math.nan]
    for _ in range(40_000):
        values.append(rng.random() * rng.choice([1.0, 10.0, 1000.0, 1e-3, 1e6]))
        values.append(rng.uniform(-5.0, 5.0))
    for digits in (0, 1, 2, 4, 8):
        for x in values + _near_ties(digits):
            assert format_fixed(x, digits) == f"{x:.{digits}f}", (x, digits)
    with pytest.raises(ValueError):
        format_fixed(1.0, 9)
