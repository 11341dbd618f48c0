"""The cascade verifier: shared features, the exported ONNX graph and the runtime class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.answer_features import N_FEATURES, answer_features
from engine.eval.cascade import answer_features as analysis_features
from engine.train.train_verifier import FamilyData, build_onnx, outcome, pick_threshold
from engine.verifier import Verifier

PROMPT = "Janet has 3 apples and buys 5 more. How many apples does she have?"


def test_analysis_and_runtime_share_one_feature_definition() -> None:
    assert analysis_features is answer_features
    f = answer_features(PROMPT, "3 + 5 = 8. The answer is 8.")
    assert len(f) == N_FEATURES
    assert f[2] == 1.0  # a stated final answer
    assert f[5] > 0.0  # an arithmetic step


def test_shipped_verifier_prefers_a_stated_answer_over_a_hedge() -> None:
    v = Verifier.load()
    sure = v.confidence(PROMPT, "She has 3 + 5 = 8 apples. The answer is 8.", "math")
    hedged = v.confidence(PROMPT, "I'm not sure, it might be unclear", "math")
    assert 0.0 <= hedged < sure <= 1.0
    assert sure >= v.threshold("math") > hedged


def test_unfitted_family_falls_back_to_general() -> None:
    v = Verifier.load()
    assert v.family("translation") == "general"
    assert v.threshold("translation") == v.calibration["general"].threshold
    a = "The answer is 8."
    assert v.confidence(PROMPT, a, "translation") == v.confidence(PROMPT, a, "general")


def test_onnx_graph_matches_numpy_logistic_regression(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=(N_FEATURES, 2)), rng.normal(size=2)
    (tmp_path / "verifier.onnx").write_bytes(build_onnx(w, b))
    (tmp_path / "verifier.json").write_text(
        '{"name": "t", "families": ["math", "general"], "calibration": {'
        '"math": {"threshold": 0.5, "ece_cross_fitted": 0.1, "n": 3},'
        '"general": {"threshold": 0.6, "ece_cross_fitted": 0.1, "n": 3}}}'
    )
    v = Verifier.load(tmp_path)
    a = "It is 8, because 3 + 5 = 8."
    x = np.asarray(answer_features(PROMPT, a))
    expected = 1 / (1 + np.exp(-(x @ w + b)))
    assert v.confidence(PROMPT, a, "math") == pytest.approx(expected[0], abs=1e-5)
    assert v.confidence(PROMPT, a, "code") == pytest.approx(expected[1], abs=1e-5)


def test_threshold_is_the_cheapest_that_keeps_quality() -> None:
    # Four answers: the weak model is right on the two confident ones only.
    d = FamilyData(
        x=np.zeros((4, N_FEATURES)),
        weak_ok=np.array([1.0, 1.0, 0.0, 0.0]),
        strong_ok=np.ones(4),
        cost_weak=np.full(4, 1.0),
        cost_strong=np.full(4, 10.0),
    )
    conf = np.array([0.9, 0.8, 0.3, 0.2])
    t = pick_threshold(d, conf)
    assert 0.3 < t <= 0.8
    res = outcome(d, conf, t)
    assert res["escalation"] == 0.5
    assert res["quality_vs_strong"] == 1.0
    assert res["cost_multiplier"] == pytest.approx((4 * 1.0 + 2 * 10.0) / 40.0)
