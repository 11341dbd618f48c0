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

from engine.eval.data import PAIR_BENCHES, STRONG, WEAK, MultiRow, PairRow
from engine.eval.metrics import apgr, decile_curve
from engine.features import Features
from engine.router.prior import head_for
from engine.router.route import Link, RouteConfig, RouteStats, difficulty_level, route_score
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

    def head_difficulty(self, feats: Sequence[Features], heads: Sequence[str]) -> Arr:
        """Each prompt's difficulty from its head (one prediction of every head)."""
        pred = self.diff.predict(feats)
        d: Arr = pred[np.arange(len(feats)), [self.diff.labels.index(h) for h in heads]].astype(
            np.float64
        )
        return d

    def routes_of(
        self, d: Arr, feats: Sequence[Features], heads: Sequence[str], cfg: RouteConfig
    ) -> Arr:
        """The route scores of prompts whose head difficulties are ``d``."""
        st = self.stats(cfg)
        return np.array(
            [
                route_score(float(di), h, float(f.dense[cfg.length_feature]), cfg, st)
                for di, h, f in zip(d, heads, feats, strict=True)
            ]
        )

    def scores_by_head(
        self, feats: Sequence[Features], heads: Sequence[str], cfg: RouteConfig
    ) -> Arr:
        return self.routes_of(self.head_difficulty(feats, heads), feats, heads, cfg)

    def scores(self, feats: Sequence[Features], tasks: Sequence[TaskType], cfg: RouteConfig) -> Arr:
        return self.scores_by_head(feats, [head_for(t) for t in tasks], cfg)

    def route_and_level(
        self, feats: Sequence[Features], heads: Sequence[str], cfg: RouteConfig
    ) -> tuple[Arr, Arr]:
        """The route score and the ``difficulty_level`` (the links' two inputs) of each prompt,
        from one prediction of the heads."""
        d = self.head_difficulty(feats, heads)
        level = np.array([difficulty_level(float(x)) for x in d])
        return self.routes_of(d, feats, heads, cfg), level


def link_probs(links: Sequence[Link], route: Arr, level: Arr) -> Arr:
    """Rows = prompts, columns = ``links``: ``sigmoid(a + b * route + c * level)``."""
    abc = np.asarray(links, dtype=np.float64).reshape(-1, 3)
    z = abc[:, 0] + np.outer(route, abc[:, 1]) + np.outer(level, abc[:, 2])
    out: Arr = 1.0 / (1.0 + np.exp(-z))
    return out


def fit_link(route: Arr, outcome: Arr, groups: Sequence[str]) -> tuple[float, float]:
    """``p = sigmoid(a + b * route)`` for one model from its outcomes (soft labels in [0, 1]);
    one indicator per source while fitting (its mean folded into ``a``)."""
    names = sorted(set(groups))
    onehot = np.zeros((len(groups), len(names)))
    onehot[np.arange(len(groups)), [names.index(g) for g in groups]] = 1.0
    intercept, coef = soft_logistic(np.column_stack([route, onehot]), outcome, 400)
    return intercept + float(coef[1:].mean()), float(coef[0])


def soft_logistic(x: Arr, outcome: Arr, max_iter: int) -> tuple[float, Arr]:
    """(intercept, coefficients) of a logistic regression (C = 10) on soft labels in [0, 1]:
    each row once as a success weighted ``y`` and once as a failure weighted ``1 - y``."""
    from sklearn.linear_model import LogisticRegression

    y = np.clip(np.asarray(outcome, dtype=np.float64), 0.0, 1.0)
    xx = np.vstack([x, x])
    yy = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    lr = LogisticRegression(C=10.0, max_iter=max_iter).fit(
        xx, yy, sample_weight=np.concatenate([y, 1.0 - y]) + 1e-6
    )
    coef: Arr = lr.coef_[0].astype(np.float64)
    return float(lr.intercept_[0]), coef


def fit_level_link(route: Arr, level: Arr, outcome: Arr) -> Link:
    """``p = sigmoid(a + b * route + c * level)`` for one model from its outcomes on rows of
    several sources, with no per-source indicator: how the model's success moves with the
    prompt's difficulty level across benchmarks is what the link learns here (a multi-model
    router trades one model for another across mixed traffic, so the level matters; see
    docs/router.md, "Multi-model links")."""
    intercept, coef = soft_logistic(np.column_stack([route, level]), outcome, 1000)
    return intercept, float(coef[0]), float(coef[1])


def fit_pair_links(
    fitted: FittedRoute, cfg: RouteConfig, pair: Sequence[PairSet]
) -> dict[str, Link]:
    """The pair models' links on the pair benchmarks: route only, one indicator per benchmark
    (``fit_link``; ``c = 0``). Between these two models alone, ``p(strong) - p(weak)`` then
    ranks prompts by the route score (``router.json``'s ``pair_link``, taken with ``[engine]
    pair_links``)."""
    return _pair_links_on(np.concatenate([_route_level(fitted, ps, cfg)[0] for ps in pair]), pair)


def _pair_outcomes(pair: Sequence[PairSet]) -> dict[str, Arr]:
    """Each pair model's outcomes on the rows of ``pair``, in order."""
    return {
        name: np.array([float(getattr(row, attr)) for ps in pair for row in ps.rows])
        for name, attr in ((STRONG, "strong"), (WEAK, "weak"))
    }


def _pair_links_on(route: Arr, pair: Sequence[PairSet]) -> dict[str, Link]:
    groups = [row.bench for ps in pair for row in ps.rows]
    return {name: (*fit_link(route, y, groups), 0.0) for name, y in _pair_outcomes(pair).items()}


def fit_links(
    fitted: FittedRoute,
    cfg: RouteConfig,
    pair: Sequence[PairSet],
    multi: Sequence[Sequence[MultiRow]],
    multi_feats: Sequence[Sequence[Features]],
) -> dict[str, Link]:
    """A link per model with outcomes, as the engine takes them by default: every model with
    ``multi`` rows on route and level, no indicator (``fit_level_link``), over all its rows
    (GPT-4-1106's pair-benchmark rows too, so its level term also sees math); a pair model
    without ``multi`` rows (Mixtral-Instruct) on ``pair`` (``fit_pair_links``)."""
    from engine.train.train_router import head_of_source

    rows_of: dict[str, list[tuple[Arr, Arr, Arr]]] = {}
    for rows, feats in zip(multi, multi_feats, strict=True):
        r, lv = fitted.route_and_level(feats, [head_of_source(x.source) for x in rows], cfg)
        for name in sorted({m for x in rows for m in x.quality}):
            keep = [i for i, x in enumerate(rows) if name in x.quality]
            y = np.array([rows[i].quality[name] for i in keep], dtype=np.float64)
            rows_of.setdefault(name, []).append((r[keep], lv[keep], y))
    out: dict[str, Link] = {}
    if pair:
        r, lv = (
            np.concatenate(x)
            for x in zip(*(_route_level(fitted, ps, cfg) for ps in pair), strict=True)
        )
        for name, y in _pair_outcomes(pair).items():
            if name in rows_of:
                rows_of[name].append((r, lv, y))
        out.update(_pair_links_on(r, pair))
    for name, parts in rows_of.items():
        out[name] = fit_level_link(*(np.concatenate(x) for x in zip(*parts, strict=True)))
    return out


def _route_level(fitted: FittedRoute, ps: PairSet, cfg: RouteConfig) -> tuple[Arr, Arr]:
    return fitted.route_and_level(ps.feats, [head_for(t) for t in ps.tasks], cfg)


def fit_route(
    corpus: Corpus, exclude: Iterable[str], c_general: float, bench: Sequence[int] | None = None
) -> FittedRoute:
    """Difficulty heads and standardization constants from every 7B and RouterBench row whose
    source is not in ``exclude``; with ``bench``, those RouterBench rows instead."""
    skip = set(exclude)
    idx = [i for i, r in enumerate(corpus.seven) if r.source not in skip]
    rows = [corpus.seven[i] for i in idx]
    feats = [corpus.seven_feats[i] for i in idx]
    keep = (
        [i for i, r in enumerate(corpus.bench) if r.source not in skip] if bench is None else bench
    )
    diff = fit_difficulty(
        rows,
        feats,
        c_general,
        [corpus.bench[i] for i in keep],
        [corpus.bench_feats[i] for i in keep],
    )
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
    return best_config(mean), mean


def best_config(mean: dict[RouteConfig, float]) -> RouteConfig:
    """The config with the highest mean APGR; the first in grid order among equals (means
    rounded to 9 decimals). A knob that barely reaches the validation scores (``c_general`` on
    GSM8K, where 1 prompt in 1,307 is not judged by the math head) can tie, and float noise of
    the features must not be what breaks the tie."""
    return max(mean, key=lambda cfg: round(mean[cfg], 9))


__all__ = [
    "PAIR_BENCHES",
    "Corpus",
    "FittedRoute",
    "PairSet",
    "best_config",
    "fit_route",
    "grid",
    "select",
]
