"""``modelroute calibrate`` sets a tier's cost_weight from decisions of the real engine."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from engine.eval.cmd_calibrate import (
    Trial,
    chosen_model,
    parse_target,
    run,
    with_cost_weight,
    write_cost_weight,
)
from modelroute.config import DEFAULT_CONFIG_PATH, load_config
from modelroute.errors import InvalidInput

PROMPTS = [
    "What is 2 + 2?",
    "Translate 'good morning' into French.",
    "Prove that there are infinitely many primes of the form 4k+3, with every step justified.",
    "Write a Python function that merges overlapping intervals and explain its complexity.",
    "Summarize the causes of the First World War in three sentences.",
    "A train leaves at 3 pm at 60 mph; another at 4 pm at 80 mph. When does the second catch up?",
    "Name a color.",
    "Explain the difference between a mutex and a semaphore, with an example of a deadlock.",
]


@pytest.fixture()
def policy(tmp_path: Path) -> Path:
    p = tmp_path / "policy.toml"
    shutil.copy(DEFAULT_CONFIG_PATH, p)
    return p


@pytest.fixture()
def traffic(tmp_path: Path) -> Path:
    p = tmp_path / "traffic.jsonl"
    p.write_text("".join(json.dumps({"prompt": x}) + "\n" for x in PROMPTS), encoding="utf-8")
    return p


def _args(policy: Path, traffic: Path, target: str) -> argparse.Namespace:
    return argparse.Namespace(
        target=target,
        tier="standard",
        traffic=traffic,
        strong=None,
        limit=100,
        config=policy,
        data=None,
    )


def test_parse_target_rejects_unknown_kinds_and_out_of_range_values() -> None:
    assert parse_target("savings=0.4") == ("savings", 0.4)
    for bad in ("share=0.3", "savings=1.5", "quality-floor=x"):
        with pytest.raises(InvalidInput):
            parse_target(bad)


def test_write_cost_weight_changes_only_that_tier_and_keeps_the_file_valid(policy: Path) -> None:
    before = load_config(policy)
    write_cost_weight(policy, "standard", 0.375, "test")
    after = load_config(policy)
    assert after.tiers["standard"].cost_weight == pytest.approx(0.375)
    for name, t in before.tiers.items():
        if name != "standard":
            assert after.tiers[name] == t
    assert after.models == before.models
    write_cost_weight(policy, "standard", 2.5, "again")  # idempotent: one comment, one value
    text = policy.read_text(encoding="utf-8")
    assert text.count("# calibrated:") == 1
    assert load_config(policy).tiers["standard"].cost_weight == pytest.approx(2.5)


def test_unknown_tier_table_is_an_error(policy: Path) -> None:
    with pytest.raises(InvalidInput):
        write_cost_weight(policy, "nope", 1.0, "x")


def test_strong_share_target_is_met_by_the_written_weight(
    policy: Path, traffic: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(_args(policy, traffic, "strong-share=0.25")) == 0
    out = json.loads(capsys.readouterr().out)
    cfg = load_config(policy)
    weight = cfg.tiers["standard"].cost_weight
    assert weight == pytest.approx(out["cost_weight"], rel=1e-4)
    trial = Trial(cfg, "standard", PROMPTS, out["strong"])
    assert trial.run(weight).strong_share <= 0.25
    # the always-strong reference: at weight 0 the strong model takes the largest share
    assert trial.run(0.0).strong_share >= trial.run(weight).strong_share


def test_savings_and_quality_targets_move_the_weight_in_opposite_directions(
    policy: Path, traffic: Path
) -> None:
    cfg = load_config(policy)
    trial = Trial(cfg, "standard", PROMPTS, None)
    from engine.eval.cmd_calibrate import search

    # more savings asks for a higher cost weight, a stricter quality floor for a lower one
    w_save, o_save = search(trial, "savings", 0.5)
    w_more, o_more = search(trial, "savings", 0.7)
    assert o_save.savings >= 0.5 and o_more.savings >= 0.7
    assert w_save < w_more
    w_q, o_q = search(trial, "quality-floor", 0.99)
    w_loose, o_loose = search(trial, "quality-floor", 0.9)
    assert o_q.quality >= 0.99 and o_loose.quality >= 0.9
    assert w_q < w_loose
    assert with_cost_weight(cfg, "standard", w_q).tiers["standard"].cost_weight == w_q


def test_a_cascade_tier_counts_the_model_the_score_chose_not_the_cheap_first_try(
    policy: Path,
) -> None:
    cfg = load_config(policy)
    cascading = [n for n, t in cfg.tiers.items() if getattr(t, "cascade", False)]
    assert cascading, "the default policy has a cascade tier"
    trial = Trial(cfg, cascading[0], PROMPTS, None)
    decisions = trial._decide(0.0)
    assert any(d.cascade is not None for d in decisions)  # math/code prompts cascade there
    for d in decisions:
        if d.cascade is not None:
            assert chosen_model(d) == d.chain[d.cascade.first_hop + 1].model.name
            assert chosen_model(d) != d.model.name
        else:
            assert chosen_model(d) == d.model.name
