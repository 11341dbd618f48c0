"""Regularization of a difficulty head chosen by K-fold cross-validation inside its own rows.

A math or code head of the embedding view has ~390 dense columns and, with a pair benchmark
held out, few rows (871 MATH rows when GSM8K is held out): ``C = 1`` lets it fit noise that does
not transfer. ``cv_c`` picks the inverse regularization strength from ``CV_GRID`` by K-fold CV
over the rows the head is trained on (and nothing else): the score of a C is the mean, over
folds, of the Spearman rank correlation between the held-out fold's predicted difficulty and
its soft target, computed within each source benchmark and weighted by its count (a head has to
rank prompts within a benchmark; that is all the route score uses). Ties go to the smaller C
(stronger regularization). Every choice here (grid, K, seed, metric) was fixed before any
figure of the variants that use it was seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Arr = npt.NDArray[np.float64]
Matrix = Any  # numpy [n, d] or scipy.sparse CSR
CV_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
CV_FOLDS = 5
CV_SEED = 0
MIN_SOURCE_ROWS = 5  # fewer held-out rows of a source in a fold: not scored


@dataclass(frozen=True, slots=True)
class CvResult:
    """The chosen C and the mean within-source rank correlation of every C tried."""

    c: float
    scores: tuple[tuple[float, float], ...]  # (C, mean CV Spearman)


def ranks(x: Arr) -> Arr:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    out: Arr = (sums / counts)[inv]
    return out


def spearman(a: Arr, b: Arr) -> float:
    """Spearman rank correlation; 0.0 when either side is constant."""
    ra, rb = ranks(np.asarray(a, dtype=np.float64)), ranks(np.asarray(b, dtype=np.float64))
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def within_source_spearman(pred: Arr, target: Arr, sources: Sequence[str]) -> float:
    """Spearman within each source with at least ``MIN_SOURCE_ROWS`` rows, count-weighted."""
    src = np.asarray(sources)
    total = weight = 0.0
    for s in sorted(set(sources)):
        sel = src == s
        n = int(sel.sum())
        if n < MIN_SOURCE_ROWS:
            continue
        total += n * spearman(pred[sel], target[sel])
        weight += n
    return total / weight if weight else 0.0


def fold_ids(
    sources: Sequence[str], k: int = CV_FOLDS, seed: int = CV_SEED
) -> npt.NDArray[np.int64]:
    """Fold of each row: shuffled within each source, then dealt round-robin (so every fold
    holds about 1/k of every source)."""
    rng = np.random.default_rng(seed)
    src = np.asarray(sources)
    out = np.zeros(len(src), dtype=np.int64)
    for s in sorted(set(sources)):
        idx = np.flatnonzero(src == s)
        out[rng.permutation(idx)] = np.arange(len(idx)) % k
    return out


Fit = Callable[[Matrix, Arr, float], Callable[[Matrix], Arr]]


def cv_c(
    x: Matrix,
    target: Arr,
    sources: Sequence[str],
    fit: Fit,
    grid: Sequence[float] = CV_GRID,
    k: int = CV_FOLDS,
) -> CvResult:
    """The C of ``grid`` with the best mean within-source CV Spearman. ``fit(x, y, c)`` returns
    a predictor over rows of ``x``."""
    folds = fold_ids(sources, k)
    y = np.asarray(target, dtype=np.float64)
    src = np.asarray(sources)
    scores = []
    for c in grid:
        per_fold = []
        for f in range(k):
            test = np.flatnonzero(folds == f)
            train = np.flatnonzero(folds != f)
            if len(test) == 0 or len(train) == 0:
                continue
            predict = fit(x[train], y[train], c)
            per_fold.append(within_source_spearman(predict(x[test]), y[test], list(src[test])))
        scores.append((float(c), float(np.mean(per_fold)) if per_fold else 0.0))
    best = max(scores, key=lambda cs: (cs[1], -cs[0]))
    return CvResult(best[0], tuple(scores))
