"""A blind per-head route choice made on every source that is not held out (issue 4).

The nested-choice hybrid of ``embed_compare`` decides each task head's route on the other pair
benchmark only; with GSM8K held out that leaves MMLU's math prompts, on which GPT-4 is no
better than Mixtral, so the math head has no evidence. This module widens the validation set.

The rule, written down before any of its held-out figures was seen (2026-11-29):

1. For a held-out pair benchmark H, the validation sources are every source name of the 7B-model
   rows, the RouterBench rows and the pair benchmarks, except H.
2. For each validation source V, the n-gram route and the CV-regularized embedding route are
   refitted without H and without V (inner leave-one-source-out: every row named V is dropped,
   7B, RouterBench and pair alike), under the knobs the outer protocol chose for H (on the other
   pair benchmark, never on H).
3. V's rows form up to three evidence sets, each with a strong/weak pair fixed in advance:
   ``pair:V`` (gpt-4-1106-preview vs Mixtral-8x7B-Instruct), ``7b:V`` (the best and the worst of
   the 7 open models by mean score over the 7B rows of every source that is not a pair benchmark;
   ``seven_pair``, computed once, the same for every H) and ``rb:V`` (gpt-4-1106-preview vs
   mistralai/mixtral-8x7b-chat).
4. Three candidate routes per prompt, each standardized over the scored set's prompts (no labels):
   n-gram ``z(a)``, embedding ``z(c)`` and their mean ``z(z(a) + z(c))``.
5. A prompt's head is ``head_for`` of the engine's task classifier, as on H. For each head, on
   every evidence set with at least ``MIN_PROMPTS`` prompts of that head and on which the strong
   model's mean score beats the weak one's, each candidate's APGR over those prompts; the mean
   over these sets, each set weighted equally (each is one benchmark, as H is). The highest mean
   wins; ties (9 decimals) in the order mean, n-gram, embedding; no qualifying set: the mean.
6. H's score of a prompt: the candidate its head chose, standardized over H's prompts.

A secondary metric, fixed at the same time and reported as its own variant: in step 5, the
Spearman correlation of each candidate with the set's difficulty target (share of the set's
models that fail: 2, 7 or 11) instead of APGR, on sets with at least ``MIN_PROMPTS`` prompts of
the head (no strong-beats-weak condition).

No row of H, nor its labels, takes part in any step. Cost: per H, one refit of both routes per
validation source (the math and code heads are reused when V is not one of their sources).

The deployable form of this rule (constants from the training rows instead of the scored set's
prompts) is stated in ``engine.eval.wide_deploy``; it runs on the same fits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from engine.eval.data import PAIR_BENCHES, STRONG, MultiRow
from engine.eval.embed_compare import DEPLOYED, ROUTE_HEADS, ViewScores, select_matrix
from engine.eval.head_cv import spearman
from engine.eval.matrix_route import (
    EMBED_CV,
    LinearHead,
    MatrixRoute,
    Part,
    View,
    _rows,
    fit_matrix_route,
)
from engine.eval.metrics import apgr, decile_curve
from engine.eval.route_select import Corpus
from engine.eval.wide_deploy import (
    TRAIN_METRIC,
    WIDE_TRAIN,
    Scale,
    pick,
    scale_of,
    scaled_candidates,
)
from engine.router.prior import head_for
from engine.router.route import RouteConfig
from engine.train.train_router import difficulty_target

Arr = npt.NDArray[np.float64]
Idx = npt.NDArray[np.int64]
RB_WEAK = "mistralai/mixtral-8x7b-chat"
CANDIDATES = ("mean", "n-gram", "embedding")  # also the tie order
DEFAULT = "mean"
MIN_PROMPTS = 50
METRICS = ("apgr", "spearman")
WIDE_APGR = (
    "hybrid (wide choice, APGR): per head n-gram / CV-embedding / mean, chosen on every source "
    "not held out"
)
WIDE_SPEARMAN = (
    "hybrid (wide choice, Spearman): per head n-gram / CV-embedding / mean, chosen on every "
    "source not held out"
)
ROUTE_ROW = "length + difficulty"  # the feature set's route row in ``ViewScores.held``
WIDE_NAMES = {"apgr": WIDE_APGR, "spearman": WIDE_SPEARMAN}


@dataclass(frozen=True, slots=True)
class EvalSet:
    """Rows of one validation source in one family, with the fixed strong/weak pair's scores."""

    name: str  # "pair:mmlu", "7b:math", "rb:mbpp"
    source: str  # the source name left out of training when this set is scored
    part: str  # "pair", "seven" or "bench": where the rows are in the corpus
    idx: Idx
    heads: tuple[str, ...]
    strong: Arr
    weak: Arr
    target: Arr  # share of the set's models that fail


def seven_pair(rows: Sequence[MultiRow]) -> tuple[str, str]:
    """The best and the worst 7B model by mean score over the rows of non-pair sources."""
    use = [r for r in rows if r.source not in PAIR_BENCHES]
    names = sorted({m for r in use for m in r.quality})
    mean = {m: float(np.mean([r.quality[m] for r in use if m in r.quality])) for m in names}
    return max(names, key=lambda m: mean[m]), min(names, key=lambda m: mean[m])


def _multi_sets(
    prefix: str, part: str, rows: Sequence[MultiRow], heads: Sequence[str], pair: tuple[str, str]
) -> list[EvalSet]:
    out = []
    for src in sorted({r.source for r in rows}):
        idx = np.array(
            [i for i, r in enumerate(rows) if r.source == src and set(pair) <= set(r.quality)],
            dtype=np.int64,
        )
        if len(idx) == 0:
            continue
        out.append(
            EvalSet(
                f"{prefix}:{src}",
                src,
                part,
                idx,
                tuple(heads[i] for i in idx),
                np.array([rows[i].quality[pair[0]] for i in idx]),
                np.array([rows[i].quality[pair[1]] for i in idx]),
                np.array([difficulty_target(rows[i]) for i in idx]),
            )
        )
    return out


def eval_sets(
    corpus: Corpus,
    held: str,
    seven_heads: Sequence[str],
    bench_heads: Sequence[str],
    pair_heads: Mapping[str, Sequence[str]],
) -> list[EvalSet]:
    """Every evidence set of the sources other than ``held`` (step 3 of the rule)."""
    out = []
    for b, ps in corpus.pair.items():
        if b == held:
            continue
        s = np.array([float(r.strong) for r in ps.rows])
        w = np.array([float(r.weak) for r in ps.rows])
        idx = np.arange(len(ps.rows), dtype=np.int64)
        out.append(
            EvalSet(f"pair:{b}", b, "pair", idx, tuple(pair_heads[b]), s, w, 1.0 - (s + w) / 2.0)
        )
    seven = seven_pair(corpus.seven)
    out += _multi_sets("7b", "seven", corpus.seven, seven_heads, seven)
    out += _multi_sets("rb", "bench", corpus.bench, bench_heads, (STRONG, RB_WEAK))
    return [s for s in out if s.source != held]


def zscore(x: Arr) -> Arr:
    out: Arr = (x - x.mean()) / (x.std() or 1.0)
    return out


def candidates(ngram: Arr, embed: Arr) -> dict[str, Arr]:
    """Step 4: the three candidate routes over one scored set."""
    a, c = zscore(ngram), zscore(embed)
    return {"n-gram": a, "embedding": c, "mean": zscore(a + c)}


@dataclass(frozen=True, slots=True)
class Evidence:
    """One evidence set's candidate scores (by routers that never saw the set nor H)."""

    set: EvalSet
    cands: dict[str, Arr]
    train: dict[str, Arr] = field(default_factory=dict)  # with training constants (wide_deploy)


@dataclass(frozen=True, slots=True)
class WideChoice:
    target: str  # the held-out benchmark
    metric: str
    head: str
    route: str
    means: dict[str, float]  # per candidate, over the qualifying sets (empty: none qualified)
    per_set: tuple[tuple[str, int, dict[str, float]], ...]  # (set, prompts of the head, values)


def _value(metric: str, ev: Evidence, sel: npt.NDArray[np.bool_], cand: str) -> float:
    x = ev.cands[cand][sel]
    if metric == "apgr":
        return apgr(decile_curve(x, ev.set.strong[sel], ev.set.weak[sel]))
    return spearman(x, ev.set.target[sel])


def choose(
    target: str,
    metric: str,
    head: str,
    evidence: Sequence[Evidence],
    min_prompts: int = MIN_PROMPTS,
) -> WideChoice:
    """Step 5 for one head."""
    per_set = []
    for ev in evidence:
        sel = np.array([h == head for h in ev.set.heads], dtype=bool)
        n = int(sel.sum())
        if n < min_prompts:
            continue
        if metric == "apgr" and ev.set.strong[sel].mean() <= ev.set.weak[sel].mean():
            continue
        per_set.append((ev.set.name, n, {c: _value(metric, ev, sel, c) for c in CANDIDATES}))
    if not per_set:
        return WideChoice(target, metric, head, DEFAULT, {}, ())
    means = {c: float(np.mean([v[c] for _, _, v in per_set])) for c in CANDIDATES}
    route = max(CANDIDATES, key=lambda c: (round(means[c], 9), -CANDIDATES.index(c)))
    return WideChoice(target, metric, head, route, means, tuple(per_set))


def apply(heads: Sequence[str], ngram: Arr, embed: Arr, choices: Sequence[WideChoice]) -> Arr:
    """Step 6: each prompt's score from its head's chosen candidate (over the scored prompts)."""
    return pick(heads, candidates(ngram, embed), {c.head: c.route for c in choices})


# (view kind, exclude, evidence set) -> route scores of that set; supplied by the caller
ScoreFn = Callable[[str, frozenset[str], EvalSet], Arr]


def collect_evidence(
    corpus: Corpus,
    held: str,
    sets: Sequence[EvalSet],
    score: ScoreFn,
    kinds: tuple[str, str],
    progress: bool = True,
    scale: Callable[[frozenset[str]], Scale] | None = None,
) -> list[Evidence]:
    """Step 2: every set scored by both routes refitted without ``held`` and its own source
    (``held`` empty: without its own source only). ``scale``: the training constants of the
    fits without a source set (``Scorer.scale``), for the deployable form's candidates."""
    from tqdm import tqdm

    out = []
    sources = sorted({s.source for s in sets})
    what = f"{held} held out" if held else "all data"
    for v in tqdm(sources, desc=f"wide choice, {what}", disable=not progress):
        skip = frozenset({held, v} - {""})
        for s in (s for s in sets if s.source == v):
            a, c = score(kinds[0], skip, s), score(kinds[1], skip, s)
            train = scaled_candidates(a, c, scale(skip)) if scale is not None else {}
            out.append(Evidence(s, candidates(a, c), train))
    return out


def train_choices(target: str, evidence: Sequence[Evidence]) -> list[WideChoice]:
    """Step 5' of ``wide_deploy``: the APGR choice on the training-constant candidates."""
    ev = [Evidence(e.set, e.train) for e in evidence]
    return [replace(choose(target, "apgr", h, ev), metric=TRAIN_METRIC) for h in ROUTE_HEADS]


def row_heads(rows: Sequence[MultiRow]) -> list[str]:
    """Each row's head from the engine's task classifier (its source's family if absent)."""
    from engine.eval.tasks import tasks_of

    out = [""] * len(rows)
    for src in sorted({r.source for r in rows}):
        idx = [i for i, r in enumerate(rows) if r.source == src]
        for i, t in zip(idx, tasks_of([rows[i].prompt for i in idx], src), strict=True):
            out[i] = head_for(t)
    return out


def _set_part(view: View, s: EvalSet) -> Part:
    if s.part == "pair":
        return view.pair[s.source]
    p = view.seven if s.part == "seven" else view.bench
    return Part(_rows(p.x, list(s.idx)), p.dense[s.idx])


@dataclass(slots=True)
class Scorer:
    """Route scores of an evidence set by a route refitted without ``skip`` (a ``ScoreFn``);
    only the current source's fits are kept, heads are reused through ``cache``."""

    corpus: Corpus
    views: Mapping[str, View]
    cfg: Mapping[str, RouteConfig]
    cache: dict[tuple[object, ...], tuple[LinearHead, float | None]]
    last: dict[tuple[str, frozenset[str]], MatrixRoute] = field(default_factory=dict)
    heads: tuple[Sequence[str], Sequence[str]] = ((), ())  # of the 7B and RouterBench rows
    kinds: tuple[str, str] = ("n-gram", EMBED_CV)

    def __call__(self, kind: str, skip: frozenset[str], s: EvalSet) -> Arr:
        if (kind, skip) not in self.last:
            for key in [key for key in self.last if key[1] != skip]:
                del self.last[key]
            self.last[(kind, skip)] = fit_matrix_route(
                self.views[kind],
                self.corpus.seven,
                self.corpus.bench,
                skip,
                self.cfg[kind].c_general,
                self.cache,
            )
        return self.last[(kind, skip)].scores(
            _set_part(self.views[kind], s), s.heads, self.cfg[kind]
        )

    def scale(self, skip: frozenset[str]) -> Scale:
        """Training constants of the current fits without ``skip`` (both routes scored first)."""
        routes = [self.last[(k, skip)] for k in self.kinds]
        views = [self.views[k] for k in self.kinds]
        cfgs = [self.cfg[k] for k in self.kinds]
        return scale_of(routes, views, cfgs, self.corpus, skip, self.heads)


def wide_table(choices: Sequence[WideChoice]) -> str:
    """One row per (held-out benchmark, metric, head): the route and the evidence behind it."""
    lines = [
        "| held out | metric | head | route | sets used | mean: n-gram / embedding / mean |"
        " per set (prompts: n-gram / embedding / mean) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in choices:
        if c.means:
            means = " / ".join(f"{c.means[k]:.3f}" for k in ("n-gram", "embedding", "mean"))
        else:
            means = f"no qualifying set: {DEFAULT} by rule"
        sets = "; ".join(
            f"{name} ({n}: "
            + " / ".join(f"{v[k]:.3f}" for k in ("n-gram", "embedding", "mean"))
            + ")"
            for name, n, v in c.per_set
        )
        lines.append(
            f"| {c.target} | {c.metric} | {c.head} | {c.route} | {len(c.per_set)} | {means} "
            f"| {sets or '-'} |"
        )
    return "\n".join(lines)


def intervals_table(rows: Sequence[tuple[str, str, float, float, float]]) -> str:
    """APGR with its bootstrap 95% interval, beside RouteLLM's best (the target)."""
    from engine.eval.variants import TARGETS

    lines = [
        "| benchmark | variant | APGR | 95% interval (bootstrap of the prompts) | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {b} | {name} | {v:.3f} | [{lo:.3f}, {hi:.3f}] | {TARGETS[b][0]:.3f} |"
        for b, name, v, lo, hi in rows
    ]
    return "\n".join(lines)


def run_wide(
    corpus: Corpus,
    views: Mapping[str, View],
    outer: Mapping[str, Mapping[str, ViewScores]],
    progress: bool = True,
    kinds: tuple[str, str] = ("n-gram", EMBED_CV),
    deployed: bool = True,
) -> tuple[dict[str, dict[str, Arr]], list[WideChoice]]:
    """The wide-choice hybrids of every held-out pair benchmark: their scores (one per metric,
    and the deployable form of ``wide_deploy``) and the per-head choices. ``views``: the n-gram
    and CV-embedding views; ``outer``: their outer-LOBO results per held-out benchmark (knobs,
    held-out route scores and the fits); ``kinds``: the feature sets of the n-gram and the
    embedding candidate. ``deployed``: also the choices for a router trained on all data
    (target ``DEPLOYED``; knobs by the best mean APGR over the pair benchmarks, each scored
    without it, as ``modelroute train`` chooses them)."""
    pair_heads = {b: [head_for(t) for t in ps.tasks] for b, ps in corpus.pair.items()}
    heads = (row_heads(corpus.seven), row_heads(corpus.bench))
    cache: dict[tuple[object, ...], tuple[LinearHead, float | None]] = {}
    scores: dict[str, dict[str, Arr]] = {}
    choices: list[WideChoice] = []
    for held in outer:
        cfg = {k: outer[held][k].cfg for k in kinds}
        score = Scorer(corpus, views, cfg, cache, heads=heads, kinds=kinds)
        sets = eval_sets(corpus, held, heads[0], heads[1], pair_heads)
        ev = collect_evidence(corpus, held, sets, score, kinds, progress, score.scale)
        mine = [choose(held, m, h, ev) for m in METRICS for h in ROUTE_HEADS]
        mine_t = train_choices(held, ev)
        choices += mine + mine_t
        a, c = (outer[held][k].held[f"{k}: {ROUTE_ROW}"] for k in kinds)
        scores[held] = {
            WIDE_NAMES[m]: apply(pair_heads[held], a, c, [x for x in mine if x.metric == m])
            for m in METRICS
        }
        fits = [f for f in (outer[held][k].fitted for k in kinds) if f is not None]
        sc = scale_of(fits, [views[k] for k in kinds], list(cfg.values()), corpus, {held}, heads)
        route = {x.head: x.route for x in mine_t}
        scores[held][WIDE_TRAIN] = pick(pair_heads[held], scaled_candidates(a, c, sc), route)
    if deployed:  # the same rule for a router trained on everything: every source validates
        _, ev = deployed_evidence(corpus, views, kinds, heads, cache, progress)
        choices += [choose(DEPLOYED, m, h, ev) for m in METRICS for h in ROUTE_HEADS]
        choices += train_choices(DEPLOYED, ev)
    return scores, choices


def deployed_evidence(
    corpus: Corpus,
    views: Mapping[str, View],
    kinds: tuple[str, str],
    heads: tuple[Sequence[str], Sequence[str]],
    cache: dict[tuple[object, ...], tuple[LinearHead, float | None]] | None = None,
    progress: bool = True,
) -> tuple[dict[str, RouteConfig], list[Evidence]]:
    """The all-data router's knobs per feature set (best mean APGR over the pair benchmarks,
    each scored without it) and the evidence of every source, scored without it."""
    cfg = {k: select_matrix(views[k], corpus, list(corpus.pair), []) for k in kinds}
    pair_heads = {b: [head_for(t) for t in ps.tasks] for b, ps in corpus.pair.items()}
    sets = eval_sets(corpus, "", heads[0], heads[1], pair_heads)
    score = Scorer(corpus, views, cfg, {} if cache is None else cache, heads=heads, kinds=kinds)
    return cfg, collect_evidence(corpus, "", sets, score, kinds, progress, score.scale)


__all__ = [
    "CANDIDATES",
    "EvalSet",
    "Evidence",
    "WideChoice",
    "apply",
    "candidates",
    "choose",
    "collect_evidence",
    "deployed_evidence",
    "eval_sets",
    "intervals_table",
    "run_wide",
    "seven_pair",
    "train_choices",
    "wide_table",
]
