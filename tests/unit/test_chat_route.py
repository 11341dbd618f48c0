"""The chat route family's knobs: candidates, choice on preference labels, nesting, training."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.eval.chat import ALPACA_FILE, ALPACA_WEAK, ChatSet, candidates, choose, nested_routes
from engine.features import featurize
from engine.router.learned import MODELS_DIR
from engine.router.prior import CHAT
from engine.router.route import RouteConfig, RouteStats
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


def test_candidates_are_the_shared_knobs_then_unit_length_weight_pairs() -> None:
    cs = candidates(SHARED)
    assert cs[0] == SHARED
    for c in cs[1:]:
        dw, lw = c.weights(CHAT)
        assert dw > 0.0 and dw * dw + lw * lw == pytest.approx(1.0)
        assert c.weights("general") == (1.0, 0.5)


def test_the_choice_follows_the_labels_and_ties_keep_the_shared_knobs() -> None:
    cs = _set(1.5)
    # a difficulty that carries no signal: only length can rank
    d = 0.5 + 0.01 * np.random.default_rng(0).standard_normal(len(cs.prompts))
    length = np.array([f.dense[0] for f in cs.feats])
    best, means = choose(d, length, cs, SHARED, STATS, SETS)
    assert best.weights(CHAT)[1] < 0.0 and max(means) == means[candidates(SHARED).index(best)]
    flat = ChatSet(cs.prompts, cs.datasets, np.full(len(cs.prompts), 0.3), cs.feats, cs.tasks)
    best, _ = choose(d, length, flat, SHARED, STATS, SETS)
    assert best == SHARED  # every candidate ties when nothing can be gained


def test_each_source_set_is_scored_with_knobs_chosen_without_it() -> None:
    cs = _set(1.5)
    d = np.linspace(0.3, 0.7, len(cs.prompts))
    length = np.array([f.dense[0] for f in cs.feats])
    scores, chosen = nested_routes(d, length, cs, SHARED, STATS)
    assert sorted(chosen) == sorted(SETS)
    for held, cfg in chosen.items():
        others = [s for s in SETS if s != held]
        assert cfg == choose(d, length, cs, SHARED, STATS, others)[0]
        sel = np.asarray(cs.datasets) == held
        dw, lw = cfg.weights(CHAT)
        z = dw * (d[sel] - 0.5) / 0.1 + lw * (length[sel] - 0.45) / 0.08
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


def test_training_writes_only_the_family_and_is_idempotent(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "models"
    _write_alpaca(data)
    out.mkdir()
    for name in ("router.json", "router_difficulty.onnx", "router_quality.onnx"):
        shutil.copy(MODELS_DIR / name, out / name)
    before = json.loads((out / "router.json").read_text(encoding="utf-8"))
    res = train(data, out)
    first = (out / "router.json").read_bytes()
    after = json.loads(first)
    assert res["prompts"] == 120
    cfg = RouteConfig.from_json(after["route"])
    assert cfg.weights(CHAT)[1] < 0.0
    assert {k: v for k, v in after.items() if k != "route"} == {
        k: v for k, v in before.items() if k != "route"
    }
    old = RouteConfig.from_json(before["route"])
    assert (cfg.c_general, cfg.length_feature, cfg.length_weight) == (
        old.c_general, old.length_feature, old.length_weight,
    )  # fmt: skip
    train(data, out)
    assert (out / "router.json").read_bytes() == first


def test_training_without_a_router_says_what_to_run_first(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--only router"):
        train(tmp_path, tmp_path)
