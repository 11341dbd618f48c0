"""n-gram vs sentence-embedding vs combined text features for the route score, compared LOBO.

One pipeline, three design matrices over the same rows:
- ``n-gram``: hashed word 1-2 grams folded to ``DIFF_FOLD`` + the featurizer's dense stats (the
  shipped router's features; this pipeline reproduces its figures, a check of the protocol),
- ``embedding``: the MiniLM-L6 sentence embedding (scaled by sqrt(384), so each component has
  about unit RMS) + the same dense stats,
- ``embedding + n-gram``: all of them side by side.

For each, exactly the protocol of ``engine.eval.route_select`` / ``engine.eval.pair``: math,
code and general difficulty heads (logistic regression on soft labels; per-source indicator
columns while fitting) on the 7B-model rows without the held-out benchmark, the general head
also on the RouterBench rows; the route score ``z(difficulty) + w * z(length)`` with its knobs
(general-head C, length feature, weight) chosen on the grid of ``route_select`` by an inner
leave-one-out on the other pair benchmark. Nothing that scores benchmark B saw B.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.eval.data import PAIR_BENCHES, MultiRow
from engine.eval.embed_data import CorpusEmbeddings
from engine.eval.metrics import apgr, cpt, decile_curve, savings_at
from engine.eval.pair import PairResult
from engine.eval.route_select import GRID_C, Corpus, grid
from engine.features import Features
from engine.router.prior import head_for
from engine.router.route import RouteConfig, RouteStats, route_score
from engine.train.train_router import (
    DIFF_FOLD,
    DIFF_HEADS,
    HEAD_SOURCES,
    design,
    difficulty_target,
    head_of_source,
)

Arr = npt.NDArray[np.float64]
Matrix = Any  # numpy [n, d] or scipy.sparse CSR
KINDS = ("n-gram", "embedding", "embedding + n-gram")
NGRAM_ROUTE = "n-gram: length + difficulty"
EMBED_ROUTE = "embedding: length + difficulty"
ENSEMBLE = "ensemble: mean of n-gram and embedding routes"
HYBRID = "hybrid: n-gram route for math prompts, embedding route for the rest"


@dataclass(frozen=True, slots=True)
class Part:
    """Design matrix rows and the featurizer's dense stats (for the length term) of a part."""

    x: Matrix
    dense: Arr


@dataclass(frozen=True, slots=True)
class View:
    """The corpus under one feature set."""

    kind: str
    pair: dict[str, Part]
    seven: Part
    bench: Part


def _hstack(blocks: Sequence[Matrix]) -> Matrix:
    import scipy.sparse as sp

    if any(sp.issparse(b) for b in blocks):
        return sp.hstack([sp.csr_matrix(b) for b in blocks]).tocsr()
    return np.column_stack(blocks)


def _vstack(blocks: Sequence[Matrix]) -> Matrix:
    import scipy.sparse as sp

    if any(sp.issparse(b) for b in blocks):
        return sp.vstack([sp.csr_matrix(b) for b in blocks]).tocsr()
    return np.vstack(blocks)


def _rows(x: Matrix, idx: Sequence[int]) -> Matrix:
    return x[np.asarray(idx, dtype=np.int64)]


def part_matrix(kind: str, feats: Sequence[Features], emb: npt.NDArray[np.float32]) -> Part:
    dense = np.stack([f.dense for f in feats]).astype(np.float64)
    scaled = emb.astype(np.float64) * np.sqrt(emb.shape[1])
    if kind == "n-gram":
        x = design(feats, DIFF_FOLD)
    elif kind == "embedding":
        x = np.column_stack([scaled, dense])
    elif kind == "embedding + n-gram":
        x = _hstack([design(feats, DIFF_FOLD), scaled])
    else:
        raise ValueError(f"unknown feature set {kind!r}")
    return Part(x, dense)


def build_view(kind: str, corpus: Corpus, emb: CorpusEmbeddings) -> View:
    return View(
        kind,
        {b: part_matrix(kind, ps.feats, emb.pair[b]) for b, ps in corpus.pair.items()},
        part_matrix(kind, corpus.seven_feats, emb.seven),
        part_matrix(kind, corpus.bench_feats, emb.bench),
    )


@dataclass(frozen=True, slots=True)
class LinearHead:
    coef: Arr
    bias: float

    def predict(self, x: Matrix) -> Arr:
        z = np.asarray(x @ self.coef).ravel() + self.bias
        out: Arr = 1.0 / (1.0 + np.exp(-z))
        return out


def fit_matrix_head(
    x: Matrix, target: Arr, groups: Sequence[str] | None = None, c: float = 1.0
) -> LinearHead:
    """Logistic regression on soft labels (each row twice, weights y and 1 - y), as
    ``engine.train.train_router.fit_head`` does, over any design matrix."""
    from sklearn.linear_model import LogisticRegression

    d = x.shape[1]
    if groups is not None:
        names = sorted(set(groups))
        onehot = np.zeros((len(groups), len(names)))
        onehot[np.arange(len(groups)), [names.index(g) for g in groups]] = 1.0
        x = _hstack([x, onehot])
    y = np.clip(np.asarray(target, dtype=np.float64), 0.0, 1.0)
    n = x.shape[0]
    # 400 iterations are enough for the sparse n-gram matrix (the shipped head's setting; same
    # fit), not always for the dense embedding columns: lbfgs stops at its tolerance either way.
    lr = LogisticRegression(C=c, max_iter=2000).fit(
        _vstack([x, x]),
        np.concatenate([np.ones(n), np.zeros(n)]),
        sample_weight=np.concatenate([y, 1.0 - y]) + 1e-6,
    )
    coef = lr.coef_[0]
    bias = float(lr.intercept_[0])
    if groups is not None:
        bias += float(coef[d:].mean())
    return LinearHead(coef[:d].astype(np.float64), bias)


@dataclass(frozen=True, slots=True)
class MatrixRoute:
    heads: dict[str, LinearHead]
    head_stats: dict[str, tuple[float, float]]
    length: dict[int, tuple[float, float]]

    def scores(self, part: Part, heads: Sequence[str], cfg: RouteConfig) -> Arr:
        preds = {h: m.predict(part.x) for h, m in self.heads.items()}
        st = RouteStats(self.head_stats, self.length[cfg.length_feature])
        return np.array(
            [
                route_score(
                    float(preds[h][i]), h, float(part.dense[i, cfg.length_feature]), cfg, st
                )
                for i, h in enumerate(heads)
            ]
        )


def fit_matrix_route(
    view: View,
    seven: Sequence[MultiRow],
    bench: Sequence[MultiRow],
    exclude: Iterable[str],
    c: float,
) -> MatrixRoute:
    """Difficulty heads and standardization constants from the rows whose source is not
    excluded (the matrix twin of ``route_select.fit_route``)."""
    skip = set(exclude)
    idx = [i for i, r in enumerate(seven) if r.source not in skip]
    keep = [i for i, r in enumerate(bench) if r.source not in skip]
    target = np.array([difficulty_target(seven[i]) for i in idx])
    heads: dict[str, LinearHead] = {}
    for head in DIFF_HEADS:
        srcs = HEAD_SOURCES.get(head)
        sel = [k for k, i in enumerate(idx) if srcs is None or seven[i].source in srcs]
        sel = sel or list(range(len(idx)))
        x = _rows(view.seven.x, [idx[k] for k in sel])
        if srcs is None:
            groups = [seven[idx[k]].source for k in sel] + [f"rb:{bench[i].source}" for i in keep]
            x = _vstack([x, _rows(view.bench.x, keep)])
            y = np.concatenate([target[sel], [difficulty_target(bench[i]) for i in keep]])
            heads[head] = fit_matrix_head(x, y, groups, c)
        else:
            heads[head] = fit_matrix_head(x, target[sel])
    train_x = _rows(view.seven.x, idx)
    stats = {}
    for head, model in heads.items():
        sel = [k for k, i in enumerate(idx) if head_of_source(seven[i].source) == head]
        p = model.predict(train_x)
        v = p[sel] if sel else p
        stats[head] = (float(v.mean()), float(v.std() or 1.0))
    dense = view.seven.dense[idx]
    length = {k: (float(dense[:, k].mean()), float(dense[:, k].std() or 1.0)) for k in (0, 1)}
    return MatrixRoute(heads, stats, length)


def _apgr(scores: Arr, corpus: Corpus, bench: str) -> float:
    rows = corpus.pair[bench].rows
    return apgr(decile_curve(scores, [r.strong for r in rows], [r.weak for r in rows]))


def select_matrix(
    view: View, corpus: Corpus, validate_on: Sequence[str], exclude: Iterable[str]
) -> RouteConfig:
    """Best grid config by mean APGR over ``validate_on``, each scored by heads without it."""
    skip = set(exclude)
    table: dict[RouteConfig, list[float]] = {cfg: [] for cfg in grid()}
    for v in validate_on:
        heads = [head_for(t) for t in corpus.pair[v].tasks]
        for c in GRID_C:
            fitted = fit_matrix_route(view, corpus.seven, corpus.bench, skip | {v}, c)
            for cfg in (g for g in table if g.c_general == c):
                table[cfg].append(_apgr(fitted.scores(view.pair[v], heads, cfg), corpus, v))
    mean = {cfg: float(np.mean(v)) for cfg, v in table.items()}
    return max(mean, key=lambda cfg: mean[cfg])


def lobo_view_scores(view: View, corpus: Corpus, held: str) -> tuple[dict[str, Arr], RouteConfig]:
    """Difficulty-only and combined route scores of ``held`` under one feature set, LOBO."""
    other = [b for b in PAIR_BENCHES if b != held]
    cfg = select_matrix(view, corpus, other, [held])
    fitted = fit_matrix_route(view, corpus.seven, corpus.bench, [held], cfg.c_general)
    heads = [head_for(t) for t in corpus.pair[held].tasks]
    part = view.pair[held]
    return {
        f"{view.kind}: difficulty only": fitted.scores(
            part, heads, RouteConfig(cfg.c_general, 0, 0.0)
        ),
        f"{view.kind}: length + difficulty": fitted.scores(part, heads, cfg),
    }, cfg


def _zscore(x: Arr) -> Arr:
    out: Arr = (x - x.mean()) / (x.std() or 1.0)
    return out


@dataclass(frozen=True, slots=True)
class Delta:
    """APGR of ``router`` minus the n-gram router's on ``bench``, with a paired bootstrap 95%
    interval over the held-out prompts (the routers fixed: test-sample noise only)."""

    bench: str
    router: str
    delta: float
    low: float
    high: float


def paired_bootstrap(
    a: Arr, b: Arr, strong: Arr, weak: Arr, n: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """APGR(a) - APGR(b) on all prompts, and the 2.5 / 97.5 percentiles over resamples."""
    rng = np.random.default_rng(seed)
    full = apgr(decile_curve(a, strong, weak)) - apgr(decile_curve(b, strong, weak))
    diffs = np.empty(n)
    for k in range(n):
        i = rng.integers(0, len(a), len(a))
        diffs[k] = apgr(decile_curve(a[i], strong[i], weak[i])) - apgr(
            decile_curve(b[i], strong[i], weak[i])
        )
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return full, float(lo), float(hi)


def deltas(corpus: Corpus, scores: dict[str, dict[str, Arr]], n: int = 1000) -> list[Delta]:
    out = []
    for held, sc in scores.items():
        if NGRAM_ROUTE not in sc:
            continue
        rows = corpus.pair[held].rows
        s_ok = np.array([r.strong for r in rows], dtype=np.float64)
        w_ok = np.array([r.weak for r in rows], dtype=np.float64)
        for name in (EMBED_ROUTE, HYBRID, ENSEMBLE):
            if name in sc:
                d, lo, hi = paired_bootstrap(sc[name], sc[NGRAM_ROUTE], s_ok, w_ok, n)
                out.append(Delta(held, name, d, lo, hi))
    return out


def compare(
    corpus: Corpus,
    emb: CorpusEmbeddings,
    kinds: Sequence[str] = KINDS,
    progress: bool = True,
    bootstrap: int = 1000,
) -> tuple[list[PairResult], dict[str, RouteConfig], list[Delta]]:
    """Every feature set's routers on every pair benchmark, LOBO, plus two mixes of the n-gram
    and embedding route scores: an ensemble (their mean, each standardized over the held-out
    prompts: no labels used) and the hybrid the slow path runs (the n-gram route for prompts
    the math head judges, the embedding route for the others; both are already standardized
    with training constants)."""
    from tqdm import tqdm

    scores: dict[str, dict[str, Arr]] = {b: {} for b in PAIR_BENCHES}
    chosen: dict[str, RouteConfig] = {}
    for kind in tqdm(kinds, desc="feature sets", disable=not progress):
        view = build_view(kind, corpus, emb)
        for held in PAIR_BENCHES:
            s, chosen[f"{held} / {kind}"] = lobo_view_scores(view, corpus, held)
            scores[held].update(s)
    out: list[PairResult] = []
    for held in PAIR_BENCHES:
        sc = scores[held]
        if NGRAM_ROUTE in sc and EMBED_ROUTE in sc:
            a, b = sc[NGRAM_ROUTE], sc[EMBED_ROUTE]
            sc[ENSEMBLE] = (_zscore(a) + _zscore(b)) / 2.0
            math_rows = np.array([head_for(t) == "math" for t in corpus.pair[held].tasks])
            sc[HYBRID] = np.where(math_rows, a, b)
        rows = corpus.pair[held].rows
        s_ok, w_ok = [r.strong for r in rows], [r.weak for r in rows]
        for name, v in sc.items():
            c = decile_curve(v, s_ok, w_ok)
            out.append(PairResult(held, name, c, apgr(c), cpt(c, 0.5), cpt(c, 0.8), savings_at(c)))
    return out, chosen, deltas(corpus, scores, bootstrap) if bootstrap else []
