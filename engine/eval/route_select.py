"""Fitting the combined route score and choosing its knobs by inner leave-one-benchmark-out.

``select(corpus, validate_on, exclude)``: for each validation pair benchmark V, the difficulty
heads are trained on the 7B-model rows without V and without ``exclude`` (plus the RouterBench
rows in the general head), every ``RouteConfig`` of the grid scores V, and the config with the
best mean APGR over the V's wins. The benchmark finally scored is always in ``exclude``, so it
never takes part in the choice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.eval.data import PAIR_BENCHES, MultiRow, PairRow
from engine.eval.metrics import apgr, decile_curve
from engine.features import Features
from engine.router.prior import head_for
from engine.router.route import RouteConfig, RouteStats, route_score
from engine.train.train_router import Heads, fit_difficulty, head_stats
from modelroute.domain import TaskType

Arr = npt.NDArray[np.float64]
GRID_C = (1.0, 10.0)
GRID_FEATURE = (0, 1)
GRID_WEIGHT = (0.0, 0.25, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class PairSet:
    rows: list[PairRow]
    feats: list[Features]
    tasks: list[TaskType]


@dataclass(frozen=True, slots=True)
class Corpus:
    """Featurized training/evaluation rows, computed once per process."""

    pair: dict[str, PairSet]
    seven: list[MultiRow]
    seven_feats: list[Features]
    bench: list[MultiRow]
    bench_feats: list[Features]


@dataclass(frozen=True, slots=True)
class FittedRoute:
    diff: Heads
    heads: dict[str, tuple[float, float]]
    length: dict[int, tuple[float, float]]  # per length feature

    def stats(self, cfg: RouteConfig) -> RouteStats:
        return RouteStats(self.heads, self.length[cfg.length_feature])

    def difficulty(self, feats: Sequence[Features], tasks: Sequence[TaskType]) -> Arr:
        pred = self.diff.predict(feats)
        cols = [self.diff.labels.index(head_for(t)) for t in tasks]
        return pred[np.arange(len(feats)), cols].astype(np.float64)

    def scores(self, feats: Sequence[Features], tasks: Sequence[TaskType], cfg: RouteConfig) -> Arr:
        d = self.difficulty(feats, tasks)
        st = self.stats(cfg)
        return np.array(
            [
                route_score(float(di), head_for(t), float(f.dense[cfg.length_feature]), cfg, st)
                for di, t, f in zip(d, tasks, feats, strict=True)
            ]
        )


def fit_route(corpus: Corpus, exclude: Iterable[str], c_general: float) -> FittedRoute:
    """Difficulty heads and standardization constants from every row not in ``exclude``."""
    skip = set(exclude)
    idx = [i for i, r in enumerate(corpus.seven) if r.source not in skip]
    rows = [corpus.seven[i] for i in idx]
    feats = [corpus.seven_feats[i] for i in idx]
    diff = fit_difficulty(rows, feats, c_general, corpus.bench, corpus.bench_feats)
    dense = np.stack([f.dense for f in feats]).astype(np.float64)
    length = {k: (float(dense[:, k].mean()), float(dense[:, k].std() or 1.0)) for k in (0, 1)}
    return FittedRoute(diff, head_stats(diff, rows, feats), length)


def pair_apgr(scores: Arr, rows: Sequence[PairRow]) -> float:
    return apgr(decile_curve(scores, [r.strong for r in rows], [r.weak for r in rows]))


def grid() -> list[RouteConfig]:
    return [
        RouteConfig(c, f, w) for c, f, w in itertools.product(GRID_C, GRID_FEATURE, GRID_WEIGHT)
    ]


def select(
    corpus: Corpus, validate_on: Sequence[str], exclude: Iterable[str]
) -> tuple[RouteConfig, dict[RouteConfig, float]]:
    """Best grid config by mean APGR over ``validate_on`` (each scored by heads without it)."""
    skip = set(exclude)
    table: dict[RouteConfig, list[float]] = {cfg: [] for cfg in grid()}
    for v in validate_on:
        ps = corpus.pair[v]
        for c in GRID_C:
            fitted = fit_route(corpus, skip | {v}, c)
            for cfg in (g for g in table if g.c_general == c):
                table[cfg].append(pair_apgr(fitted.scores(ps.feats, ps.tasks, cfg), ps.rows))
    mean = {cfg: float(np.mean(v)) for cfg, v in table.items()}
    best = max(mean, key=lambda cfg: mean[cfg])  # first of equals, grid order
    return best, mean


__all__ = ["PAIR_BENCHES", "Corpus", "FittedRoute", "PairSet", "fit_route", "grid", "select"]
