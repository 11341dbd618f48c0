"""The chat route family's knobs: candidates, choice on preference labels, nesting, training."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.eval.chat import (
    ALPACA_FILE,
    ALPACA_WEAK,
    CHAT_GRID,
    ChatSet,
    candidates,
    choose,
    nested_routes,
    routes,
)
from engine.features import featurize
from engine.router.learned import MODELS_DIR
from engine.router.prior import CHAT
from engine.router.route import FamilyKnobs, RouteConfig, RouteStats
from engine.train.train_chat_route import train
from modelroute.domain import TaskType

SETS = ("helpful_base", "koala", "oasst", "selfinstruct", "vicuna")
TOPICS = ("owls", "tides", "bread", "volcanoes", "chess", "tea", "rivers", "glass")


def _prompt(i: int) -> str:
    return f"Tell me about {TOPICS[i % len(TOPICS)]}." + " Please be thorough." * (i % 9)


def _set(weak_of_length: float) -> ChatSet:
    """40 open-ended prompts per source set; the weak model's win rate grows with length when
    ``weak_of_length`` > 0 (as on AlpacaEval)."""
    prompts = [_prompt(i) for i in range(40 * len(SETS))]
    feats = [featurize(p) for p in prompts]
    length = np.array([f.dense[0] for f in feats])
    z = (length - length.mean()) / length.std()
    weak = 1.0 / (1.0 + np.exp(-(-1.5 + weak_of_length * z)))
    datasets = [SETS[i % len(SETS)] for i in range(len(prompts))]
    return ChatSet(prompts, datasets, weak, feats, [TaskType.OPEN_QA] * len(prompts))


STATS = RouteStats({"general": (0.5, 0.1)}, (0.45, 0.08))
SHARED = RouteConfig(10.0, 0, 0.5)


def _lengths(cs: ChatSet) -> np.ndarray:
    return np.array([f.dense[0] for f in cs.feats], dtype=np.float64)


def test_candidates_are_standardized_on_the_chat_prompts_they_are_fitted_on() -> None:
    cs = _set(1.5)
    d = np.linspace(0.3, 0.7, len(cs.prompts))
    length = _lengths(cs)
    fit = np.asarray(cs.datasets) != "vicuna"
    cands = candidates(SHARED, d, cs, length, STATS, fit)
    assert cands[0] == SHARED and len(cands) == 1 + len(CHAT_GRID)
    zl = (length - 0.45) / 0.08
    for c, w in zip(cands[1:], CHAT_GRID, strict=True):
        k = c.knobs(CHAT)
        assert k.length_weight == pytest.approx(w * k.difficulty_weight) and k.difficulty_weight > 0
        assert (k.length_low, k.length_high) == (zl[fit].min(), zl[fit].max())
        r = routes(d, cs.tasks, length, c, STATS)[fit]
        assert r.mean() == pytest.approx(0.0, abs=1e-9) and r.std() == pytest.approx(1.0)
        assert c.knobs("general") == FamilyKnobs(1.0, 0.5)


def test_lengths_past_the_fitted_range_are_clipped() -> None:
    cs = _set(1.5)
    length = _lengths(cs)
    fit = length < np.median(length)  # fitted on the shorter half only
    d = np.full(len(cs.prompts), 0.5)
    c = candidates(SHARED, d, cs, length, STATS, fit)[-1]  # the most negative length weight
    r = routes(d, cs.tasks, length, c, STATS)
    longest = length == length.max()
    assert np.allclose(r[~fit], r[fit].min()) and r[longest].max() == r[fit].min()


def test_the_choice_follows_the_labels_and_ties_keep_the_shared_knobs() -> None:
    cs = _set(1.5)
    # a difficulty that carries no signal: only length can rank
    d = 0.5 + 0.01 * np.random.default_rng(0).standard_normal(len(cs.prompts))
    length = _lengths(cs)
    best, table = choose(d, length, cs, SHARED, STATS, SETS)
    assert best.knobs(CHAT).length_weight < 0.0
    assert max(m for _, m in table) == dict(table)[best]
    flat = ChatSet(cs.prompts, cs.datasets, np.full(len(cs.prompts), 0.3), cs.feats, cs.tasks)
    best, _ = choose(d, length, flat, SHARED, STATS, SETS)
    assert best == SHARED  # every candidate ties when nothing can be gained


def test_each_source_set_is_scored_with_knobs_fitted_without_it() -> None:
    cs = _set(1.5)
    d = np.linspace(0.3, 0.7, len(cs.prompts))
    length = _lengths(cs)
    scores, chosen = nested_routes(d, length, cs, SHARED, STATS)
    assert sorted(chosen) == sorted(SETS)
    for held, cfg in chosen.items():
        others = [s for s in SETS if s != held]
        assert cfg == choose(d, length, cs, SHARED, STATS, others)[0]
        sel = np.asarray(cs.datasets) == held
        k = cfg.knobs(CHAT)
        zl = np.clip((length[sel] - 0.45) / 0.08, k.length_low, k.length_high)
        z = k.difficulty_weight * (d[sel] - 0.5) / 0.1 + k.length_weight * zl + k.offset
        assert np.allclose(scores[sel], z, atol=1e-5)


def _write_alpaca(data: Path, n: int = 120) -> None:
    path = data / ALPACA_FILE
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instruction", "dataset", "baseline", "model", "annotator", "preference",
                    "p_model_beats_baseline"])  # fmt: skip
        for i in range(n):
            p = _prompt(i)
            win = 1.0 / (1.0 + math.exp(-(-2.0 + 0.5 * (i % 9))))  # longer: the weak model wins
            for model, pw in ((ALPACA_WEAK, win), ("other-model", 0.9)):
                w.writerow([p, SETS[i % 5], "gpt4_1106_preview", model, "judge", 1 + pw, pw])


def test_training_writes_the_family_and_the_preference_links_and_is_idempotent(
    tmp_path: Path,
) -> None:
    data, out = tmp_path / "data", tmp_path / "models"
    _write_alpaca(data)
    out.mkdir()
    for name in ("router.json", "router_difficulty.onnx", "router_quality.onnx"):
        shutil.copy(MODELS_DIR / name, out / name)
    before = json.loads((out / "router.json").read_text(encoding="utf-8"))
    shipped_pref = set(before.get("preference_links", []))
    res = train(data, out)
    first = (out / "router.json").read_bytes()
    after = json.loads(first)
    assert res["prompts"] == 120
    cfg = RouteConfig.from_json(after["route"])
    assert cfg.knobs(CHAT).length_weight < 0.0
    changed = {"route", "link", "preference_links"}
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }
    old = RouteConfig.from_json(before["route"])
    assert (cfg.c_general, cfg.length_feature, cfg.length_weight) == (
        old.c_general, old.length_feature, old.length_weight,
    )  # fmt: skip
    # the links of models with outcome data are kept; the synthetic file's models are added
    # (the shipped file's own preference models are not in it, so they are dropped)
    added = {ALPACA_WEAK, "other-model", "gpt4_1106_preview"}
    assert set(after["preference_links"]) == added
    kept = {m: v for m, v in before["link"].items() if m not in shipped_pref}
    assert {m: v for m, v in after["link"].items() if m not in added} == kept
    assert after["link"]["gpt4_1106_preview"] == kept["gpt-4-1106-preview"]
    # "other-model" is preferred 90% of the time whatever the prompt: GPT-4's link + logit(0.9)
    a_g, b_g, c_g = kept["gpt-4-1106-preview"]
    a, b, c = after["link"]["other-model"]
    assert a == pytest.approx(a_g + math.log(9.0), abs=0.05) and b == pytest.approx(b_g, abs=0.05)
    assert c == c_g  # the bridge carries GPT-4-1106's level term unchanged
    train(data, out)
    assert (out / "router.json").read_bytes() == first


def test_training_without_a_router_says_what_to_run_first(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--only router"):
        train(tmp_path, tmp_path)
