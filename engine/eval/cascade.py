"""Confidence escalation (cascade) analysis: the weak model answers first, a verifier confidence
decides whether to call the strong model too.

The data has no token log-probabilities, so the confidence is a verifier over the weak answer's
text: a logistic regression on answer-shape features (length, a stated final answer, hedging,
truncation, arithmetic steps, the prompt's length), fitted with 5-fold cross-fitting inside each
set (every answer is scored by a verifier that did not see it). Costs: RouterBench rows carry
USD per model; for GSM8K the cost is estimated from config prices at 4 characters per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.answer_features import answer_features as answer_features
from engine.eval.data import load_pair, load_routerbench
from engine.eval.metrics import ece

Arr = npt.NDArray[np.float64]


def cross_fit_confidence(x: Arr, y: Arr, folds: int = 5) -> Arr:
    from sklearn.linear_model import LogisticRegression

    out = np.zeros(len(y))
    fold = np.arange(len(y)) % folds
    for k in range(folds):
        tr, te = fold != k, fold == k
        clf = LogisticRegression(max_iter=500).fit(x[tr], y[tr])
        out[te] = clf.predict_proba(x[te])[:, 1]
    return out


@dataclass(frozen=True, slots=True)
class CascadeResult:
    name: str
    n: int
    ece: float
    weak_acc: float
    strong_acc: float
    thresholds: Arr
    escalation: Arr  # share escalated per threshold
    quality: Arr  # cascade quality per threshold
    cost_mult: Arr  # cascade cost / always-strong cost
    at95: tuple[float, float]  # (escalation rate, cost multiplier) at 95% of strong quality


def analyse(
    name: str, conf: Arr, weak_ok: Arr, strong_ok: Arr, c_weak: Arr, c_strong: Arr
) -> CascadeResult:
    ths = np.linspace(0.0, 1.0, 41)
    esc, qual, mult = [], [], []
    base = float(c_strong.sum())
    for t in ths:
        e = conf < t
        esc.append(e.mean())
        qual.append(np.where(e, strong_ok, weak_ok).mean())
        mult.append(float((c_weak + e * c_strong).sum()) / base)
    esc_a, qual_a, mult_a = np.asarray(esc), np.asarray(qual), np.asarray(mult)
    ok = np.nonzero(qual_a >= 0.95 * strong_ok.mean())[0]
    at95 = (float(esc_a[ok[0]]), float(mult_a[ok[0]])) if len(ok) else (float("nan"), float("nan"))
    return CascadeResult(
        name,
        len(conf),
        ece(conf, weak_ok),
        float(weak_ok.mean()),
        float(strong_ok.mean()),
        ths,
        esc_a,
        qual_a,
        mult_a,
        at95,
    )


def _price(name: str) -> tuple[float, float]:
    from modelroute.config import load_config

    m = load_config().models[name]
    return m.input_usd_per_mtok / 1e6, m.output_usd_per_mtok / 1e6


def evaluate_cascades(data_dir: Path) -> list[CascadeResult]:
    from engine.eval.data import STRONG, WEAK

    out: list[CascadeResult] = []
    rows = load_pair(data_dir, "gsm8k")
    x = np.array([answer_features(r.prompt, r.weak_response) for r in rows])
    wk = np.array([r.weak for r in rows], dtype=np.float64)
    st = np.array([r.strong for r in rows], dtype=np.float64)
    (wi, wo), (si, so) = _price(WEAK), _price(STRONG)
    cw = np.array([(len(r.prompt) * wi + len(r.weak_response) * wo) / 4 for r in rows])
    cs = np.array([(len(r.prompt) * si + len(r.strong_response) * so) / 4 for r in rows])
    out.append(analyse("gsm8k (Mixtral -> GPT-4)", cross_fit_confidence(x, wk), wk, st, cw, cs))
    weak_rb, strong_rb = "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"
    for s in ("arc_challenge", "mbpp", "winograde"):
        rb = load_routerbench(data_dir, [s])
        x = np.array([answer_features(r.prompt, r.response[weak_rb]) for r in rb])
        wk = np.array([r.quality[weak_rb] for r in rb])
        st = np.array([r.quality[strong_rb] for r in rb])
        cw = np.array([r.cost[weak_rb] for r in rb])
        cs = np.array([r.cost[strong_rb] for r in rb])
        out.append(analyse(f"{s} (mixtral -> gpt-4)", cross_fit_confidence(x, wk), wk, st, cw, cs))
    return out
