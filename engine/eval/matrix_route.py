"""Design matrices of the route-score feature sets and the difficulty heads fitted on them.

The matrix twin of ``engine.train.train_router`` (heads) and ``engine.eval.route_select``
(``fit_route``) over any design matrix: hashed n-grams (sparse), sentence embeddings (dense) or
both; used by ``engine.eval.embed_compare`` and ``engine.eval.wide_select``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.eval.data import MultiRow
from engine.eval.embed_data import CorpusEmbeddings
from engine.eval.route_select import Corpus
from engine.features import Features
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
EMBED_CV = "embedding, CV-regularized heads"


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
    cv_heads: bool = False  # math and code heads: C by K-fold CV in their rows (``head_cv``)


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
    if kind == EMBED_CV:
        return replace(build_view("embedding", corpus, emb), kind=kind, cv_heads=True)
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
    head_c: dict[str, float] = field(default_factory=dict)  # per head, when chosen by CV

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
    cache: dict[tuple[object, ...], tuple[LinearHead, float | None]] | None = None,
) -> MatrixRoute:
    """Difficulty heads and standardization constants from the rows whose source is not
    excluded (the matrix twin of ``route_select.fit_route``). ``cache``: a math or code head
    whose training rows are unchanged is reused (keyed by the sources it trains on)."""
    skip = set(exclude)
    idx = [i for i, r in enumerate(seven) if r.source not in skip]
    keep = [i for i, r in enumerate(bench) if r.source not in skip]
    target = np.array([difficulty_target(seven[i]) for i in idx])
    heads: dict[str, LinearHead] = {}
    head_c: dict[str, float] = {}
    for head in DIFF_HEADS:
        srcs = HEAD_SOURCES.get(head)
        key = (view.kind, head, frozenset(srcs - skip) if srcs else None)
        reuse = cache is not None and bool(srcs and srcs - skip)
        if reuse and cache is not None and key in cache:
            heads[head], hc = cache[key]
            if hc is not None:
                head_c[head] = hc
            continue
        sel = [k for k, i in enumerate(idx) if srcs is None or seven[i].source in srcs]
        sel = sel or list(range(len(idx)))
        x = _rows(view.seven.x, [idx[k] for k in sel])
        if srcs is None:
            groups = [seven[idx[k]].source for k in sel] + [f"rb:{bench[i].source}" for i in keep]
            x = _vstack([x, _rows(view.bench.x, keep)])
            y = np.concatenate([target[sel], [difficulty_target(bench[i]) for i in keep]])
            heads[head] = fit_matrix_head(x, y, groups, c)
        elif view.cv_heads:
            srcs_of = [seven[idx[k]].source for k in sel]
            head_c[head] = cv_head_c(x, target[sel], srcs_of)
            heads[head] = fit_matrix_head(x, target[sel], c=head_c[head])
        else:
            heads[head] = fit_matrix_head(x, target[sel])
        if reuse and cache is not None:
            cache[key] = (heads[head], head_c.get(head))
    train_x = _rows(view.seven.x, idx)
    stats = {}
    for head, model in heads.items():
        sel = [k for k, i in enumerate(idx) if head_of_source(seven[i].source) == head]
        p = model.predict(train_x)
        v = p[sel] if sel else p
        stats[head] = (float(v.mean()), float(v.std() or 1.0))
    dense = view.seven.dense[idx]
    length = {k: (float(dense[:, k].mean()), float(dense[:, k].std() or 1.0)) for k in (0, 1)}
    return MatrixRoute(heads, stats, length, head_c)


def cv_head_c(x: Matrix, target: Arr, sources: Sequence[str]) -> float:
    """A head's C by K-fold CV inside its own training rows (``engine.eval.head_cv``)."""
    from engine.eval.head_cv import cv_c

    return cv_c(x, target, sources, lambda xx, yy, c: fit_matrix_head(xx, yy, c=c).predict).c
