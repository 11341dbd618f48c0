"""The C candidate loop gives, model for model, the figures its docstring formula gives."""

from __future__ import annotations

import itertools
import math

import pytest

from engine.policy import MIN_OUTPUT_RESERVE, PREFILL_TOKENS_PER_S, SignalValues, plan
from engine.router.prior import prior_quality
from modelroute.config import Config, load_config
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
