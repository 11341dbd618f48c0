"""Train the cascade verifier: P(the cheap model's answer is correct | the answer's shape).

Data that holds both models' answers: the RouteLLM GSM8K pair (Mixtral's answer, Mixtral correct?)
for ``math``, the RouterBench MBPP rows (mixtral-8x7b-chat) for ``code``, and all of them together
with the RouterBench ARC and Winogrande rows for ``general``. One logistic regression per family on
``answer_features``; the exported ONNX holds all families side by side (input ``x`` [N, 8], output
``probs`` [N, K]) and ``verifier.json`` names the columns and holds each family's threshold.

Honest figures: every answer's confidence comes from a verifier fitted without it (5-fold
cross-fitting), and the threshold is chosen on one half of the rows and measured on the other
(and vice versa), so the reported escalation, cost and quality are held out. The exported model
and threshold are then fitted on all rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.answer_features import N_FEATURES, answer_features
from engine.eval.cascade import cross_fit_confidence
from engine.eval.data import PairRow
from engine.eval.metrics import ece

Arr = npt.NDArray[np.float64]
Idx = npt.NDArray[np.intp]
VERIFIER_NAME = "answer-shape-lr-v1"
# A cascade must keep this share of the strong model's quality.
QUALITY_TARGET = 0.95
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)
RB_WEAK, RB_STRONG = "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"


@dataclass(frozen=True, slots=True)
class FamilyData:
    x: Arr
    weak_ok: Arr
    strong_ok: Arr
    cost_weak: Arr
    cost_strong: Arr


def _pair(data_dir: Path) -> FamilyData:
    from engine.eval.data import load_pair

    return pair_from_rows(load_pair(data_dir, "gsm8k"))


def pair_from_rows(rows: list[PairRow]) -> FamilyData:
    """GSM8K pair rows as verifier data (costs from config prices, 4 characters per token)."""
    from engine.eval.cascade import _price
    from engine.eval.data import STRONG, WEAK

    (wi, wo), (si, so) = _price(WEAK), _price(STRONG)
    return FamilyData(
        np.array([answer_features(r.prompt, r.weak_response) for r in rows]),
        np.array([r.weak for r in rows], dtype=np.float64),
        np.array([r.strong for r in rows], dtype=np.float64),
        np.array([(len(r.prompt) * wi + len(r.weak_response) * wo) / 4 for r in rows]),
        np.array([(len(r.prompt) * si + len(r.strong_response) * so) / 4 for r in rows]),
    )


def _routerbench(data_dir: Path, sets: tuple[str, ...]) -> FamilyData:
    from engine.eval.data import load_routerbench

    rows = load_routerbench(data_dir, sets)
    return FamilyData(
        np.array([answer_features(r.prompt, r.response[RB_WEAK]) for r in rows]),
        np.array([r.quality[RB_WEAK] for r in rows]),
        np.array([r.quality[RB_STRONG] for r in rows]),
        np.array([r.cost[RB_WEAK] for r in rows]),
        np.array([r.cost[RB_STRONG] for r in rows]),
    )


def _concat(parts: list[FamilyData]) -> FamilyData:
    return FamilyData(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in FamilyData.__slots__)
    )


def outcome(d: FamilyData, conf: Arr, t: float, idx: Idx | None = None) -> dict[str, float]:
    """Escalation rate, cost multiplier and quality (vs always-strong) at threshold ``t``."""
    sel = np.arange(len(conf)) if idx is None else idx
    esc = conf[sel] < t
    quality = np.where(esc, d.strong_ok[sel], d.weak_ok[sel]).mean()
    cost = (d.cost_weak[sel] + esc * d.cost_strong[sel]).sum()
    return {
        "escalation": float(esc.mean()),
        "cost_multiplier": float(cost / d.cost_strong[sel].sum()),
        "quality_vs_strong": float(quality / max(d.strong_ok[sel].mean(), 1e-9)),
    }


def pick_threshold(d: FamilyData, conf: Arr, idx: Idx | None = None) -> float:
    """The lowest threshold (fewest escalations) whose quality reaches the target; 1.0 if none."""
    for t in THRESHOLDS:
        if outcome(d, conf, float(t), idx)["quality_vs_strong"] >= QUALITY_TARGET:
            return float(t)
    return 1.0


def held_out(d: FamilyData, conf: Arr) -> dict[str, float]:
    """Threshold chosen on one half, measured on the other (both ways, rows pooled)."""
    n = len(conf)
    halves = (np.arange(0, n, 2), np.arange(1, n, 2))
    esc = cost = strong_cost = 0.0
    picked = []
    correct = 0.0
    for fit_idx, test_idx in (halves, halves[::-1]):
        t = pick_threshold(d, conf, fit_idx)
        picked.append(t)
        e = conf[test_idx] < t
        esc += float(e.sum())
        cost += float((d.cost_weak[test_idx] + e * d.cost_strong[test_idx]).sum())
        strong_cost += float(d.cost_strong[test_idx].sum())
        correct += float(np.where(e, d.strong_ok[test_idx], d.weak_ok[test_idx]).sum())
    return {
        "thresholds_per_half": picked,  # type: ignore[dict-item]
        "escalation": esc / n,
        "cost_multiplier": cost / strong_cost,
        "quality_vs_strong": correct / n / max(float(d.strong_ok.mean()), 1e-9),
    }


def _fit(x: Arr, y: Arr) -> tuple[Arr, float]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=500).fit(x, y)
    return np.asarray(clf.coef_[0], dtype=np.float64), float(clf.intercept_[0])


def build_onnx(weights: Arr, bias: Arr) -> bytes:
    """Logistic regressions side by side: ``probs = sigmoid(x @ W + b)``, W [8, K], b [K]."""
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["probs"]),
        ],
        "verifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", N_FEATURES])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", weights.shape[1]])],
        [
            numpy_helper.from_array(weights.astype(f32), "W"),
            numpy_helper.from_array(bias.astype(f32), "b"),
        ],
    )
    model = helper.make_model(
        graph, producer_name="modelroute", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    return bytes(model.SerializeToString())


def families(data_dir: Path) -> dict[str, FamilyData]:
    math, code = _pair(data_dir), _routerbench(data_dir, ("mbpp",))
    letters = _routerbench(data_dir, ("arc_challenge", "winograde"))
    return {"math": math, "code": code, "general": _concat([math, code, letters])}


def train(data_dir: Path, out_dir: Path) -> dict[str, object]:
    fams = families(data_dir)
    names = list(fams)
    weights = np.zeros((N_FEATURES, len(names)))
    bias = np.zeros(len(names))
    meta: dict[str, object] = {}
    for k, name in enumerate(names):
        d = fams[name]
        conf = cross_fit_confidence(d.x, d.weak_ok)
        weights[:, k], bias[k] = _fit(d.x, d.weak_ok)
        threshold = pick_threshold(d, conf)
        meta[name] = {
            "n": len(conf),
            "threshold": threshold,
            "ece_cross_fitted": round(ece(conf, d.weak_ok), 4),
            "weak_accuracy": round(float(d.weak_ok.mean()), 4),
            "strong_accuracy": round(float(d.strong_ok.mean()), 4),
            "in_sample_threshold": {
                k2: round(v, 4) for k2, v in outcome(d, conf, threshold).items()
            },
            "held_out": {
                k2: (round(v, 4) if isinstance(v, float) else v)
                for k2, v in held_out(d, conf).items()
            },
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "verifier.onnx").write_bytes(build_onnx(weights, bias))
    doc = {
        "name": VERIFIER_NAME,
        "families": names,
        "quality_target": QUALITY_TARGET,
        "calibration": meta,
    }
    (out_dir / "verifier.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return {"verifier": VERIFIER_NAME, **meta}
