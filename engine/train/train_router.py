"""Train the learned router from ``../shared/data`` and export it as small sparse ONNX files.

Two models, both linear over ``engine.features`` (hashed n-grams folded to a smaller space, plus
the dense stats):
- ``router_difficulty.onnx``: three difficulty heads (math, code, general), each a logistic
  regression on the 7B-model outcome data (``multi_model_7b``; soft label = share of the 7 models
  that fail). The general head gets one indicator column per source benchmark while training, so
  it learns which prompts are hard *within* a benchmark, not which benchmark is hard.
- ``router_quality.onnx``: one success head per model in the data (the RouteLLM pair, the 11
  RouterBench models, the 7 open 7B models), each a logistic regression on that model's outcomes.
``router.json`` holds the labels and the standardization constants of the combined routing score.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.data import (
    PAIR_BENCHES,
    STRONG,
    WEAK,
    MultiRow,
    PairRow,
    load_7b,
    load_pair,
    load_routerbench,
)
from engine.features import DENSE_DIM, Features, featurize

F32 = npt.NDArray[np.float32]
DIFF_FOLD = 1 << 16
QUALITY_FOLD = 1 << 14
DIFF_HEADS = ("math", "code", "general")
HEAD_SOURCES: dict[str, frozenset[str]] = {
    "math": frozenset({"math", "gsm8k"}),
    "code": frozenset({"humaneval", "humaneval_js", "mbpp"}),
}


@dataclass(frozen=True, slots=True)
class Heads:
    """K linear heads over folded sparse + dense features: sigmoid(x @ W + d @ Wd + b)."""

    labels: tuple[str, ...]
    w_sparse: F32  # [fold, K]
    w_dense: F32  # [DENSE_DIM, K]
    bias: F32  # [K]

    def predict(self, feats: Sequence[Features]) -> F32:
        fold = self.w_sparse.shape[0]
        out = np.empty((len(feats), len(self.labels)), dtype=np.float32)
        for i, f in enumerate(feats):
            rows = self.w_sparse[f.indices % fold]
            out[i] = f.values @ rows + f.dense @ self.w_dense + self.bias
        return (1.0 / (1.0 + np.exp(-out))).astype(np.float32)

    @staticmethod
    def stack(parts: Iterable[Heads]) -> Heads:
        ps = list(parts)
        return Heads(
            tuple(x for p in ps for x in p.labels),
            np.concatenate([p.w_sparse for p in ps], axis=1),
            np.concatenate([p.w_dense for p in ps], axis=1),
            np.concatenate([p.bias for p in ps]),
        )


def design(feats: Sequence[Features], fold: int, extra: npt.NDArray[np.float64] | None = None):  # type: ignore[no-untyped-def]
    """CSR matrix [folded sparse | dense | extra] for scikit-learn."""
    import scipy.sparse as sp

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, f in enumerate(feats):
        rows.extend([i] * len(f.indices))
        cols.extend((f.indices % fold).tolist())
        vals.extend(f.values.tolist())
    x = sp.csr_matrix((vals, (rows, cols)), shape=(len(feats), fold), dtype=np.float64)
    blocks = [x, sp.csr_matrix(np.stack([f.dense for f in feats]).astype(np.float64))]
    if extra is not None:
        blocks.append(sp.csr_matrix(extra))
    return sp.hstack(blocks).tocsr()


def fit_head(
    feats: Sequence[Features],
    target: npt.NDArray[np.float64],
    fold: int,
    label: str,
    groups: Sequence[str] | None = None,
    c: float = 1.0,
) -> Heads:
    """Logistic regression with soft labels in [0, 1] (each row twice, weighted y and 1 - y).

    ``groups``: one indicator column per group while fitting, dropped at export.
    """
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    extra = None
    if groups is not None:
        names = sorted(set(groups))
        extra = np.zeros((len(groups), len(names)))
        extra[np.arange(len(groups)), [names.index(g) for g in groups]] = 1.0
    x = design(feats, fold, extra)
    n = x.shape[0]
    y = np.clip(np.asarray(target, dtype=np.float64), 0.0, 1.0)
    xx = sp.vstack([x, x]).tocsr()
    yy = np.concatenate([np.ones(n), np.zeros(n)])
    ww = np.concatenate([y, 1.0 - y]) + 1e-6
    lr = LogisticRegression(C=c, max_iter=400).fit(xx, yy, sample_weight=ww)
    coef = lr.coef_[0]
    bias = float(lr.intercept_[0])
    if extra is not None:  # fold the mean group offset into the bias
        bias += float(coef[fold + DENSE_DIM :].mean())
    return Heads(
        (label,),
        coef[:fold].astype(np.float32).reshape(-1, 1),
        coef[fold : fold + DENSE_DIM].astype(np.float32).reshape(-1, 1),
        np.array([bias], dtype=np.float32),
    )


def fit_difficulty(rows: Sequence[MultiRow], feats: Sequence[Features]) -> Heads:
    """Math, code and general difficulty heads from the 7B-model outcome rows."""
    target = np.array([1.0 - float(np.mean(list(r.quality.values()))) for r in rows])
    parts = []
    for head in DIFF_HEADS:
        srcs = HEAD_SOURCES.get(head)
        idx = [i for i, r in enumerate(rows) if srcs is None or r.source in srcs]
        if not idx:  # held out entirely: fall back to all rows
            idx = list(range(len(rows)))
        groups = [rows[i].source for i in idx] if srcs is None else None
        parts.append(fit_head([feats[i] for i in idx], target[idx], DIFF_FOLD, head, groups=groups))
    return Heads.stack(parts)


def fit_quality(
    pair: Sequence[PairRow],
    pair_feats: Sequence[Features],
    multi: Sequence[MultiRow],
    multi_feats: Sequence[Features],
) -> Heads:
    """One success head per model, fitted on every row that has that model's outcome."""
    data: dict[str, tuple[list[Features], list[float]]] = {}
    for name, attr in ((STRONG, "strong"), (WEAK, "weak")):
        if pair:
            data[name] = (list(pair_feats), [float(getattr(r, attr)) for r in pair])
    for r, f in zip(multi, multi_feats, strict=True):
        for name, q in r.quality.items():
            fs, ys = data.setdefault(name, ([], []))
            fs.append(f)
            ys.append(q)
    parts = [
        fit_head(fs, np.asarray(ys), QUALITY_FOLD, name) for name, (fs, ys) in sorted(data.items())
    ]
    return Heads.stack(parts)


def length_stats(feats: Sequence[Features]) -> tuple[float, float]:
    x = np.array([f.dense[0] for f in feats], dtype=np.float64)
    return float(x.mean()), float(x.std() or 1.0)


def train(data_dir: Path, out_dir: Path) -> dict[str, object]:
    """Train on all the data and write router_{difficulty,quality}.onnx + router.json."""
    from tqdm import tqdm

    from engine.onnx_sparse import build_sparse_model

    pair = [r for b in PAIR_BENCHES for r in load_pair(data_dir, b)]
    seven = load_7b(data_dir)
    bench = load_routerbench(data_dir)
    pf = [featurize(r.prompt) for r in tqdm(pair, desc="featurize pair", leave=False)]
    sf = [featurize(r.prompt) for r in tqdm(seven, desc="featurize 7B", leave=False)]
    bf = [featurize(r.prompt) for r in bench]
    diff = fit_difficulty(seven, sf)
    qual = fit_quality(pair, pf, [*seven, *bench], [*sf, *bf])
    out_dir.mkdir(parents=True, exist_ok=True)
    meta: dict[str, object] = {"version": 1, "length": length_stats(pf), "difficulty": {}}
    d_all = diff.predict(pf)
    meta["difficulty"] = {
        h: [float(d_all[:, k].mean()), float(d_all[:, k].std() or 1.0)]
        for k, h in enumerate(diff.labels)
    }
    for name, heads in (("router_difficulty", diff), ("router_quality", qual)):
        blob = build_sparse_model(
            heads.w_sparse, heads.w_dense, heads.bias, "sigmoid", labels=list(heads.labels)
        )
        (out_dir / f"{name}.onnx").write_bytes(blob)
    meta["quality_models"] = list(qual.labels)
    (out_dir / "router.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return {
        "difficulty_heads": list(diff.labels),
        "quality_models": len(qual.labels),
        "rows": {"pair": len(pair), "7b": len(seven), "routerbench": len(bench)},
    }
