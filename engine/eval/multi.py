"""RouterBench rows: cost-quality curves and AIQ, leave-one-benchmark-out across its three sets.

The router predicts each model's success from features (heads trained on the two other sets;
the "linked" router: each model's link to the route score and the difficulty level, as the
engine uses at run time), estimates each model's cost as its mean cost on those sets, and picks
``argmax_m p_m - lambda * cost_m`` per prompt; sweeping lambda traces its cost-quality curve,
scored with the realized cost and quality of the chosen answers. The oracle does the same with
the true outcomes and costs; the zero router is the hull of the 11 single models. The earlier
form of the links (route score only, one indicator per source while fitting) is scored beside
them, and ``engine.eval.multi_cv`` scores the same routers within the benchmarks (RouterBench's
own protocol: 5 folds over the rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.data import (
    PAIR_BENCHES,
    ROUTERBENCH_MODELS,
    ROUTERBENCH_SETS,
    STRONG,
    MultiRow,
    load_routerbench,
)
from engine.eval.metrics import aiq, upper_hull
from engine.eval.route_select import (
    Corpus,
    FittedRoute,
    PairSet,
    fit_link,
    fit_links,
    fit_pair_links,
    fit_route,
    link_probs,
)
from engine.features import Features, featurize
from engine.router.route import RouteConfig
from engine.train.train_router import fit_quality, head_of_source

Arr = npt.NDArray[np.float64]
LAMBDAS = np.concatenate([[0.0], np.geomspace(1.0, 1e5, 60)])
LINKED = "linked router (route + level links, as the engine)"
ROUTE_ONLY = "linked router, route-only links with source indicators (the earlier form)"
ROUTE_POOLED = "linked router, route-only links without source indicators"
FORMS = (LINKED, ROUTE_POOLED, ROUTE_ONLY)  # a tie in the nested choice goes to the first
SHORT = {LINKED: "route + level", ROUTE_POOLED: "route only, pooled",
         ROUTE_ONLY: "route only, per-source indicators"}  # fmt: skip
PAIR_LINKED = "linked router with [engine] pair_links (GPT-4-1106 on its pair link)"
NESTED = "linked router, link form chosen by inner 5-fold CV on the training sets"
HEADS = "per-model n-gram heads"


@dataclass(frozen=True, slots=True)
class MultiResult:
    models: tuple[str, ...]
    single_cost: Arr  # mean USD per prompt, per model
    single_quality: Arr
    router_cost: Arr  # per lambda: the per-model n-gram heads
    router_quality: Arr
    linked_cost: Arr  # per lambda: the linked router
    linked_quality: Arr
    oracle_cost: Arr
    oracle_quality: Arr
    aiq: dict[str, float]
    n_rows: int
    gain: dict[str, tuple[float, float, float]]  # router - hull: mean, 95% interval
    nested: dict[str, tuple[str, dict[str, float]]]  # held set -> chosen form, inner AIQ per form


def picks(util: Arr, est_cost: Arr) -> npt.NDArray[np.int64]:
    """Per lambda (rows) and prompt (columns), the model of ``argmax(util - lambda * cost)``."""
    return np.array([np.argmax(util - lam * est_cost, axis=1) for lam in LAMBDAS])


def realized(pk: npt.NDArray[np.int64], true_q: Arr, true_c: Arr) -> tuple[Arr, Arr]:
    """(mean realized cost, mean realized quality) per lambda of the picks ``pk``."""
    idx = np.arange(true_q.shape[0])
    return true_c[idx, pk].mean(axis=1), true_q[idx, pk].mean(axis=1)


def sweep(util: Arr, est_cost: Arr, true_q: Arr, true_c: Arr) -> tuple[Arr, Arr]:
    """(mean realized cost, mean realized quality) of argmax(util - lambda * est_cost)."""
    return realized(picks(util, est_cost), true_q, true_c)


def matrix(rows: Sequence[MultiRow], attr: str) -> Arr:
    return np.array([[getattr(r, attr)[m] for m in ROUTERBENCH_MODELS] for r in rows])


def scored_links(
    fitted: FittedRoute,
    cfg: RouteConfig,
    train: Sequence[MultiRow],
    train_feats: Sequence[Features],
    test: Sequence[MultiRow],
    test_feats: Sequence[Features],
    pair: Sequence[PairSet] = (),
    pair_links: bool = False,
) -> dict[str, Arr]:
    """Per link form (``FORMS``), each model's success on ``test`` through the links fitted on
    ``train``: the engine's (route + level, no indicator), route only without indicators, and
    the earlier route-only form (one indicator per source while fitting). GPT-4-1106 takes the
    engine's link in every form: its level link on ``train`` and ``pair`` (the pair benchmarks)
    by default, its pair link with ``pair_links`` (``[engine] pair_links = true``)."""
    route, level = fitted.route_and_level(test_feats, [head_of_source(r.source) for r in test], cfg)
    links = fit_links(fitted, cfg, pair, [train], [train_feats])
    if pair_links:
        links[STRONG] = fit_pair_links(fitted, cfg, pair)[STRONG]
    r_train = fitted.scores_by_head(train_feats, [head_of_source(r.source) for r in train], cfg)
    groups = {ROUTE_ONLY: [r.source for r in train], ROUTE_POOLED: ["all"] * len(train)}
    out = {LINKED: link_probs([links[m] for m in ROUTERBENCH_MODELS], route, level)}
    for form, g in groups.items():
        fitted_links = [
            links[m] if pair and m == STRONG
            else (*fit_link(r_train, np.array([r.quality[m] for r in train]), g), 0.0)
            for m in ROUTERBENCH_MODELS
        ]  # fmt: skip
        out[form] = link_probs(fitted_links, route, level)
    return out


def linked_probs(corpus: Corpus, held: str, cfg: RouteConfig) -> dict[str, Arr]:
    """``scored_links`` on ``held`` (the link forms, GPT-4-1106 on its level link over the
    RouterBench training rows and the pair benchmarks, as in the engine by default), and
    ``PAIR_LINKED`` (GPT-4-1106 on its pair link); the route heads and the links never saw
    ``held`` (nor its copy in the 7B-model data)."""
    fitted = fit_route(corpus, [held], cfg.c_general)
    train = [i for i, r in enumerate(corpus.bench) if r.source != held]
    test = [i for i, r in enumerate(corpus.bench) if r.source == held]
    args = (
        fitted,
        cfg,
        [corpus.bench[i] for i in train],
        [corpus.bench_feats[i] for i in train],
        [corpus.bench[i] for i in test],
        [corpus.bench_feats[i] for i in test],
        [corpus.pair[b] for b in PAIR_BENCHES],
    )
    out = scored_links(*args)
    out[PAIR_LINKED] = scored_links(*args, pair_links=True)[LINKED]
    return out


def aiq_gain(
    pk: npt.NDArray[np.int64],
    q: Arr,
    c: Arr,
    n_boot: int = 1000,
    seed: int = 0,
    own: bool = False,
) -> tuple[float, float, float]:
    """AIQ of the router's picks (with the single models; ``own``: its own points only) minus
    the single-model hull's, and a 95% bootstrap interval over the prompts (the router fixed;
    both sides resampled together)."""

    def gain(sel: npt.NDArray[np.int64]) -> float:
        qs, cs, ps = q[sel], c[sel], pk[:, sel]
        rc, rq = realized(ps, qs, cs)
        sc, sq = cs.mean(axis=0), qs.mean(axis=0)
        lo, hi = float(sc.min()), float(sc.max())
        if not own:
            rc, rq = np.r_[rc, sc], np.r_[rq, sq]
        return aiq(rc, rq, lo, hi) - aiq(sc, sq, lo, hi)

    rng = np.random.default_rng(seed)
    n = int(q.shape[0])
    boot = [gain(rng.integers(0, n, size=(n,))) for _ in range(n_boot)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return gain(np.arange(n)), float(lo), float(hi)


def aiq_table(
    q: Arr, c: Arr, est: Arr, routers: dict[str, Arr]
) -> tuple[dict[str, float], dict[str, tuple[Arr, Arr]]]:
    """AIQ of each router (with the single models, and its own points only), the zero router,
    the oracle and every single model; and each router's curve."""
    single_c, single_q = c.mean(axis=0), q.mean(axis=0)
    lo, hi = float(single_c.min()), float(single_c.max())
    scores = {"zero router (single-model hull)": aiq(single_c, single_q, lo, hi)}
    curves = {}
    for name, util in routers.items():
        rc, rq = sweep(util, est, q, c)
        curves[name] = (rc, rq)
        scores[f"{name}, with single models"] = aiq(
            np.r_[rc, single_c], np.r_[rq, single_q], lo, hi
        )
        scores[f"{name}, own points only"] = aiq(rc, rq, lo, hi)
    oc, oq = sweep(q, c, q, c)
    curves["oracle"] = (oc, oq)
    scores["oracle"] = aiq(oc, oq, lo, hi)
    for k, m in enumerate(ROUTERBENCH_MODELS):
        scores[f"single: {m}"] = aiq([single_c[k]], [single_q[k]], lo, hi)
    return scores, curves


def evaluate_multi(
    data_dir: Path,
    progress: bool = True,
    corpus: Corpus | None = None,
    cfg: RouteConfig | None = None,
) -> MultiResult:
    """``cfg``: the shipped route knobs (default: ``RouteConfig()``), used for the linked router."""
    from tqdm import tqdm

    from engine.eval.multi_cv import choose_form
    from engine.eval.pair import load_corpus

    corpus = corpus or load_corpus(data_dir, progress)
    cfg = cfg or RouteConfig()
    util: dict[str, list[Arr]] = {name: [] for name in (*FORMS, PAIR_LINKED, NESTED, HEADS)}
    est, qs, cs = [], [], []
    nested = {}
    for held in tqdm(ROUTERBENCH_SETS, desc="RouterBench LOBO", disable=not progress):
        train = load_routerbench(data_dir, [s for s in ROUTERBENCH_SETS if s != held])
        test = load_routerbench(data_dir, [held])
        heads = fit_quality([], [], train, [featurize(r.prompt) for r in train])
        order = [heads.labels.index(m) for m in ROUTERBENCH_MODELS]
        p_heads = heads.predict([featurize(r.prompt) for r in test])[:, order]
        util[HEADS].append(p_heads.astype(np.float64))
        forms = linked_probs(corpus, held, cfg)
        for form, p in forms.items():
            util[form].append(p)
        nested[held] = choose_form(corpus, cfg, held)
        util[NESTED].append(forms[nested[held][0]])
        est.append(np.tile(matrix(train, "cost").mean(axis=0), (len(test), 1)))
        qs.append(matrix(test, "quality"))
        cs.append(matrix(test, "cost"))
    e, q, c = np.vstack(est), np.vstack(qs), np.vstack(cs)
    routers = {name: np.vstack(u).astype(np.float64) for name, u in util.items()}
    scores, curves = aiq_table(q, c, e, routers)
    (rc, rq), (lc, lq), (oc, oq) = curves[HEADS], curves[LINKED], curves["oracle"]
    gain = {
        f"{name}, {kind}": aiq_gain(picks(routers[name], e), q, c, own=own)
        for name in (LINKED, NESTED)
        for kind, own in (("with single models", False), ("own points only", True))
    }
    return MultiResult(
        ROUTERBENCH_MODELS, c.mean(axis=0), q.mean(axis=0), rc, rq, lc, lq, oc, oq, scores,
        len(q), gain, nested,
    )  # fmt: skip


__all__ = ["LAMBDAS", "MultiResult", "evaluate_multi", "sweep", "upper_hull"]
