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

Mixes of the n-gram and embedding routes: their mean (ensemble); the hybrid the slow path runs
(n-gram for math prompts, embedding for the rest: a split chosen by hand after seeing GSM8K);
and the nested-choice hybrid, whose route per task head is chosen for each held-out benchmark B
on the inner-LOBO scores of the other pair benchmark (routers without B and without it), the
embedding route when it has fewer than ``MIN_HEAD_PROMPTS`` prompts of that head.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.eval.bootstrap import Delta, paired_bootstrap
from engine.eval.data import PAIR_BENCHES
from engine.eval.embed_data import CorpusEmbeddings
from engine.eval.head_cv import ranks
from engine.eval.matrix_route import (
    EMBED_CV,
    LinearHead,
    MatrixRoute,
    Part,
    View,
    build_view,
    cv_head_c,
    fit_matrix_head,
    fit_matrix_route,
    part_matrix,
)
from engine.eval.metrics import apgr, cpt, decile_curve, savings_at
from engine.eval.pair import PairResult
from engine.eval.route_select import GRID_C, Corpus, best_config, grid
from engine.router.prior import head_for
from engine.router.route import RouteConfig

Arr = npt.NDArray[np.float64]
KINDS = ("n-gram", "embedding", "embedding + n-gram", EMBED_CV)
NGRAM_ROUTE = "n-gram: length + difficulty"
EMBED_ROUTE = "embedding: length + difficulty"
ENSEMBLE = "ensemble: mean of n-gram and embedding routes"
EMBED_CV_ROUTE = f"{EMBED_CV}: length + difficulty"
ENSEMBLE_CV = "ensemble: mean of n-gram and CV-regularized embedding routes"
# step 3 (fixed before their figures; see engine.eval.variants): other blind mixes of the same two
RANK_CV = "ensemble: rank mean of n-gram and CV-regularized embedding routes"
SUM_CV = "ensemble: sum of n-gram and CV-regularized embedding routes (training-constant scale)"
HYBRID = (
    "hybrid (split chosen after seeing GSM8K): n-gram route for math prompts, embedding route "
    "for the rest"
)
HYBRID_NESTED = "hybrid (nested choice): route per task head chosen by inner LOBO"
ROUTE_HEADS = ("math", "code", "general")
MIN_HEAD_PROMPTS = 50  # fewer inner prompts of a head: the embedding route (the a-priori design)
DEPLOYED = "deployed (all data)"


def _apgr(scores: Arr, corpus: Corpus, bench: str) -> float:
    rows = corpus.pair[bench].rows
    return apgr(decile_curve(scores, [r.strong for r in rows], [r.weak for r in rows]))


def select_matrix_scored(
    view: View, corpus: Corpus, validate_on: Sequence[str], exclude: Iterable[str]
) -> tuple[RouteConfig, dict[str, Arr]]:
    """Best grid config by mean APGR over ``validate_on``, each scored by heads without it; and
    each validation benchmark's route scores under that config (heads without it either)."""
    skip = set(exclude)
    table: dict[RouteConfig, list[float]] = {cfg: [] for cfg in grid()}
    kept: dict[tuple[RouteConfig, str], Arr] = {}
    for v in validate_on:
        heads = [head_for(t) for t in corpus.pair[v].tasks]
        for c in GRID_C:
            fitted = fit_matrix_route(view, corpus.seven, corpus.bench, skip | {v}, c)
            for cfg in (g for g in table if g.c_general == c):
                kept[(cfg, v)] = fitted.scores(view.pair[v], heads, cfg)
                table[cfg].append(_apgr(kept[(cfg, v)], corpus, v))
    best = best_config({cfg: float(np.mean(v)) for cfg, v in table.items()})
    return best, {v: kept[(best, v)] for v in validate_on}


def select_matrix(
    view: View, corpus: Corpus, validate_on: Sequence[str], exclude: Iterable[str]
) -> RouteConfig:
    """Best grid config by mean APGR over ``validate_on``, each scored by heads without it."""
    return select_matrix_scored(view, corpus, validate_on, exclude)[0]


@dataclass(frozen=True, slots=True)
class ViewScores:
    """One feature set's LOBO scores of a held-out benchmark, and the inner-LOBO evidence:
    each other pair benchmark scored by heads trained without it and without the held-out one,
    under the knobs the inner LOBO chose."""

    held: dict[str, Arr]
    cfg: RouteConfig
    inner: dict[str, Arr]
    head_c: dict[str, float] = field(default_factory=dict)  # CV-chosen C of the final heads
    fitted: MatrixRoute | None = None  # the fit that scores ``held`` (its training constants)


def lobo_view_scores(view: View, corpus: Corpus, held: str) -> ViewScores:
    """Difficulty-only and combined route scores of ``held`` under one feature set, LOBO."""
    other = [b for b in PAIR_BENCHES if b != held]
    cfg, inner = select_matrix_scored(view, corpus, other, [held])
    fitted = fit_matrix_route(view, corpus.seven, corpus.bench, [held], cfg.c_general)
    heads = [head_for(t) for t in corpus.pair[held].tasks]
    part = view.pair[held]
    scores = {
        f"{view.kind}: difficulty only": fitted.scores(
            part, heads, RouteConfig(cfg.c_general, 0, 0.0)
        ),
        f"{view.kind}: length + difficulty": fitted.scores(part, heads, cfg),
    }
    return ViewScores(scores, cfg, inner, fitted.head_c, fitted)


def _zscore(x: Arr) -> Arr:
    out: Arr = (x - x.mean()) / (x.std() or 1.0)
    return out


def deltas(corpus: Corpus, scores: dict[str, dict[str, Arr]], n: int = 1000) -> list[Delta]:
    out = []
    for held, sc in scores.items():
        if NGRAM_ROUTE not in sc:
            continue
        rows = corpus.pair[held].rows
        s_ok = np.array([r.strong for r in rows], dtype=np.float64)
        w_ok = np.array([r.weak for r in rows], dtype=np.float64)
        for name in (
            *(EMBED_ROUTE, HYBRID, HYBRID_NESTED, ENSEMBLE),
            *(EMBED_CV_ROUTE, ENSEMBLE_CV, RANK_CV, SUM_CV),
            *(k for k in sc if k.startswith("hybrid (wide")),
        ):
            if name in sc:
                d, lo, hi = paired_bootstrap(sc[name], sc[NGRAM_ROUTE], s_ok, w_ok, n)
                out.append(Delta(held, name, d, lo, hi))
    return out


def wide_intervals(
    corpus: Corpus, scores: dict[str, dict[str, Arr]], n: int = 1000
) -> list[tuple[str, str, float, float, float]]:
    """(benchmark, router, APGR, 2.5%, 97.5%) of the wide-choice rows: bootstrap of the
    held-out prompts, router fixed (how far a figure is from a target, in test-sample noise)."""
    from engine.eval.bootstrap import apgr_interval

    out = []
    for held, sc in scores.items():
        rows = corpus.pair[held].rows
        s_ok = np.array([r.strong for r in rows], dtype=np.float64)
        w_ok = np.array([r.weak for r in rows], dtype=np.float64)
        for name in (k for k in sc if k.startswith("hybrid (wide")):
            out.append((held, name, *apgr_interval(sc[name], s_ok, w_ok, n)))
    return out


@dataclass(frozen=True, slots=True)
class Evidence:
    """Route scores of one pair benchmark's prompts by routers that never saw it."""

    bench: str
    heads: list[str]
    strong: Arr
    weak: Arr
    ngram: Arr
    embed: Arr


@dataclass(frozen=True, slots=True)
class HeadChoice:
    """Which route the hybrid uses for one task head, and the evidence for it. ``target`` is the
    held-out benchmark the choice is for (or ``DEPLOYED``); ``evidence`` lists the benchmarks
    whose prompts decided (empty: too few prompts, the embedding route by rule)."""

    target: str
    head: str
    route: str
    evidence: tuple[str, ...]
    n: int
    ngram_apgr: float
    embed_apgr: float
    per_bench: tuple[tuple[str, int, float, float], ...] = ()  # (bench, n, n-gram, embedding)
    skipped: str = ""  # benchmarks with enough prompts of the head but no strong-weak gap


def evidence_of(corpus: Corpus, bench: str, ngram: Arr, embed: Arr) -> Evidence:
    rows = corpus.pair[bench].rows
    return Evidence(
        bench,
        [head_for(t) for t in corpus.pair[bench].tasks],
        np.array([r.strong for r in rows], dtype=np.float64),
        np.array([r.weak for r in rows], dtype=np.float64),
        ngram,
        embed,
    )


def choose_head(
    target: str, head: str, evidence: Sequence[Evidence], min_prompts: int = MIN_HEAD_PROMPTS
) -> HeadChoice:
    """The n-gram route iff its APGR on the evidence prompts of ``head`` (mean over benchmarks
    with at least ``min_prompts`` of them on which the strong model beats the weak one,
    weighted by their count) beats the embedding route's; the embedding route on ties and when
    no benchmark qualifies."""
    used: list[tuple[str, int, float, float]] = []
    skipped: list[str] = []
    total = n_used = 0
    sum_ng = sum_em = 0.0
    for ev in evidence:
        sel = np.array([h == head for h in ev.heads], dtype=bool)
        n = int(sel.sum())
        total += n
        if n < min_prompts:
            continue
        if ev.strong[sel].mean() <= ev.weak[sel].mean():
            # the strong model is no better on these prompts: nothing to route on (and APGR's
            # denominator is <= 0, which would rank the routes backwards): no evidence
            skipped.append(f"{ev.bench}: {n}, strong no better than weak")
            continue
        ng = apgr(decile_curve(ev.ngram[sel], ev.strong[sel], ev.weak[sel]))
        em = apgr(decile_curve(ev.embed[sel], ev.strong[sel], ev.weak[sel]))
        used.append((ev.bench, n, ng, em))
        n_used += n
        sum_ng += n * ng
        sum_em += n * em
    if not used:
        nan = float("nan")
        return HeadChoice(target, head, "embedding", (), total, nan, nan, (), "; ".join(skipped))
    ng, em = sum_ng / n_used, sum_em / n_used
    route = "n-gram" if ng > em else "embedding"
    benches = tuple(u[0] for u in used)
    return HeadChoice(target, head, route, benches, n_used, ng, em, tuple(used), "; ".join(skipped))


def hybrid_scores(
    heads: Sequence[str], ngram: Arr, embed: Arr, choices: Sequence[HeadChoice]
) -> Arr:
    """Per prompt, the route its head was given (both routes are standardized with training
    constants, so the mix needs no rescaling)."""
    use_ngram = {c.head for c in choices if c.route == "n-gram"}
    return np.where(np.array([h in use_ngram for h in heads], dtype=bool), ngram, embed)


def nested_choices(
    corpus: Corpus, views: Mapping[str, Mapping[str, ViewScores]]
) -> list[HeadChoice]:
    """For each held-out benchmark, each head's route from the inner-LOBO scores of the other
    pair benchmarks (routers trained without them and without the held-out one); and, for the
    model trained on everything, from every pair benchmark's outer-LOBO scores."""
    out = []
    for held, by_kind in views.items():
        ng, em = by_kind["n-gram"], by_kind["embedding"]
        ev = [evidence_of(corpus, b, ng.inner[b], em.inner[b]) for b in ng.inner]
        out += [choose_head(held, h, ev) for h in ROUTE_HEADS]
    ev = [
        evidence_of(
            corpus, b, views[b]["n-gram"].held[NGRAM_ROUTE], k["embedding"].held[EMBED_ROUTE]
        )
        for b, k in views.items()
    ]
    return out + [choose_head(DEPLOYED, h, ev) for h in ROUTE_HEADS]


def _mix(corpus: Corpus, held: str, sc: dict[str, Arr], choices: Sequence[HeadChoice]) -> None:
    """The ensemble, the hand-chosen hybrid and the nested-choice hybrid of ``held``."""
    a, b = sc[NGRAM_ROUTE], sc[EMBED_ROUTE]
    heads = [head_for(t) for t in corpus.pair[held].tasks]
    sc[ENSEMBLE] = (_zscore(a) + _zscore(b)) / 2.0
    if EMBED_CV_ROUTE in sc:
        c = sc[EMBED_CV_ROUTE]
        sc[ENSEMBLE_CV] = (_zscore(a) + _zscore(c)) / 2.0
        sc[RANK_CV] = (ranks(a) + ranks(c)) / (2.0 * len(a))
        sc[SUM_CV] = (a + c) / 2.0  # each already standardized with training-row constants
    sc[HYBRID] = np.where(np.array([h == "math" for h in heads], dtype=bool), a, b)
    mine = [c for c in choices if c.target == held]
    sc[HYBRID_NESTED] = hybrid_scores(heads, a, b, mine)


@dataclass(frozen=True, slots=True)
class Comparison:
    results: list[PairResult]
    knobs: dict[str, RouteConfig]
    deltas: list[Delta]
    choices: list[HeadChoice]
    head_c: dict[str, dict[str, float]] = field(default_factory=dict)  # CV view, per held-out
    wide: list[Any] = field(default_factory=list)  # wide_select.WideChoice, per held-out
    intervals: list[tuple[str, str, float, float, float]] = field(default_factory=list)


def compare(
    corpus: Corpus,
    emb: CorpusEmbeddings,
    kinds: Sequence[str] = KINDS,
    progress: bool = True,
    bootstrap: int = 1000,
    wide: bool = True,
) -> Comparison:
    """Every feature set's routers on every pair benchmark, LOBO, plus mixes of the n-gram and
    embedding route scores: an ensemble (their mean, each standardized over the held-out
    prompts: no labels used), the hybrid the slow path runs (the n-gram route for prompts the
    math head judges, the embedding route for the others; a split chosen by hand) and the
    hybrid whose per-head split is chosen blind, by inner LOBO (``nested_choices``)."""
    from tqdm import tqdm

    scores: dict[str, dict[str, Arr]] = {b: {} for b in PAIR_BENCHES}
    views: dict[str, dict[str, ViewScores]] = {b: {} for b in PAIR_BENCHES}
    chosen: dict[str, RouteConfig] = {}
    kept: dict[str, View] = {}
    for kind in tqdm(kinds, desc="feature sets", disable=not progress):
        view = build_view(kind, corpus, emb)
        if kind in ("n-gram", EMBED_CV):
            kept[kind] = view
        for held in PAIR_BENCHES:
            vs = views[held][kind] = lobo_view_scores(view, corpus, held)
            chosen[f"{held} / {kind}"] = vs.cfg
            scores[held].update(vs.held)
    both = {"n-gram", "embedding"} <= set(kinds)
    choices = nested_choices(corpus, views) if both else []
    wide_choices: list[Any] = []
    if wide and {"n-gram", EMBED_CV} <= set(kinds):  # engine.eval.wide_select
        from engine.eval.wide_select import run_wide

        extra, wide_choices = run_wide(corpus, kept, views, progress)
        for held, sc in extra.items():
            scores[held].update(sc)
    out: list[PairResult] = []
    for held in PAIR_BENCHES:
        sc = scores[held]
        if both:
            _mix(corpus, held, sc, choices)
        rows = corpus.pair[held].rows
        s_ok, w_ok = [r.strong for r in rows], [r.weak for r in rows]
        for name, v in sc.items():
            c = decile_curve(v, s_ok, w_ok)
            out.append(PairResult(held, name, c, apgr(c), cpt(c, 0.5), cpt(c, 0.8), savings_at(c)))
    ds = deltas(corpus, scores, bootstrap) if bootstrap else []
    iv = wide_intervals(corpus, scores, bootstrap) if bootstrap else []
    head_c = {b: v[EMBED_CV].head_c for b, v in views.items() if EMBED_CV in v}
    return Comparison(out, chosen, ds, choices, head_c, wide_choices, iv)


__all__ = [  # the matrix pipeline lives in engine.eval.matrix_route; re-exported for callers
    "EMBED_CV",
    "Comparison",
    "HeadChoice",
    "LinearHead",
    "MatrixRoute",
    "Part",
    "View",
    "ViewScores",
    "build_view",
    "compare",
    "cv_head_c",
    "fit_matrix_head",
    "fit_matrix_route",
    "part_matrix",
    "select_matrix",
    "select_matrix_scored",
]
