"""RouterBench rows: cost-quality curves and AIQ, leave-one-benchmark-out across its three sets.

The router predicts each model's success from features (heads trained on the two other sets;
the "linked" router: each model's link to the route score, as the engine uses at run time),
estimates each model's cost as its mean cost on those sets, and picks
``argmax_m p_m - lambda * cost_m`` per prompt; sweeping lambda traces its cost-quality curve,
scored with the realized cost and quality of the chosen answers. The oracle does the same with
the true outcomes and costs; the zero router is the hull of the 11 single models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.data import ROUTERBENCH_MODELS, ROUTERBENCH_SETS, MultiRow, load_routerbench
from engine.eval.metrics import aiq, upper_hull
from engine.eval.route_select import Corpus, fit_links, fit_route
from engine.features import featurize
from engine.router.route import RouteConfig
from engine.train.train_router import fit_quality, head_of_source

Arr = npt.NDArray[np.float64]
LAMBDAS = np.concatenate([[0.0], np.geomspace(1.0, 1e5, 60)])


@dataclass(frozen=True, slots=True)
class MultiResult:
    models: tuple[str, ...]
    single_cost: Arr  # mean USD per prompt, per model
    single_quality: Arr
    router_cost: Arr  # per lambda
    router_quality: Arr
    oracle_cost: Arr
    oracle_quality: Arr
    aiq: dict[str, float]
    n_rows: int


def sweep(util: Arr, est_cost: Arr, true_q: Arr, true_c: Arr) -> tuple[Arr, Arr]:
    """(mean realized cost, mean realized quality) of argmax(util - lambda * est_cost)."""
    costs, quals = [], []
    idx = np.arange(len(util))
    for lam in LAMBDAS:
        pick = np.argmax(util - lam * est_cost, axis=1)
        costs.append(true_c[idx, pick].mean())
        quals.append(true_q[idx, pick].mean())
    return np.asarray(costs), np.asarray(quals)


def _matrix(rows: list[MultiRow], attr: str) -> Arr:
    return np.array([[getattr(r, attr)[m] for m in ROUTERBENCH_MODELS] for r in rows])


def linked_probs(corpus: Corpus, held: str, cfg: RouteConfig) -> Arr:
    """Each model's success on ``held`` through its link to the route score; the route heads
    and the links never saw ``held`` (nor its copy in the 7B-model data)."""
    fitted = fit_route(corpus, [held], cfg.c_general)
    train = [i for i, r in enumerate(corpus.bench) if r.source != held]
    test = [i for i, r in enumerate(corpus.bench) if r.source == held]
    links = fit_links(
        fitted,
        cfg,
        [],
        [[corpus.bench[i] for i in train]],
        [[corpus.bench_feats[i] for i in train]],
    )
    route = fitted.scores_by_head(
        [corpus.bench_feats[i] for i in test], [head_of_source(held)] * len(test), cfg
    )
    ab = np.array([links[m] for m in ROUTERBENCH_MODELS])
    out: Arr = 1.0 / (1.0 + np.exp(-(ab[:, 0] + np.outer(route, ab[:, 1]))))
    return out


def evaluate_multi(
    data_dir: Path,
    progress: bool = True,
    corpus: Corpus | None = None,
    cfg: RouteConfig | None = None,
) -> MultiResult:
    """``cfg``: the shipped route knobs (default: ``RouteConfig()``), used for the linked router."""
    from tqdm import tqdm

    from engine.eval.pair import load_corpus

    corpus = corpus or load_corpus(data_dir, progress)
    cfg = cfg or RouteConfig()
    models = ROUTERBENCH_MODELS
    probs, linked, est, qs, cs = [], [], [], [], []
    for held in tqdm(ROUTERBENCH_SETS, desc="RouterBench LOBO", disable=not progress):
        train = load_routerbench(data_dir, [s for s in ROUTERBENCH_SETS if s != held])
        test = load_routerbench(data_dir, [held])
        heads = fit_quality([], [], train, [featurize(r.prompt) for r in train])
        order = [heads.labels.index(m) for m in models]
        probs.append(heads.predict([featurize(r.prompt) for r in test])[:, order])
        linked.append(linked_probs(corpus, held, cfg))
        mean_cost = _matrix(train, "cost").mean(axis=0)
        est.append(np.tile(mean_cost, (len(test), 1)))
        qs.append(_matrix(test, "quality"))
        cs.append(_matrix(test, "cost"))
    p, e = np.vstack(probs).astype(np.float64), np.vstack(est)
    q, c = np.vstack(qs), np.vstack(cs)
    single_c, single_q = c.mean(axis=0), q.mean(axis=0)
    rc, rq = sweep(p, e, q, c)
    lc, lq = sweep(np.vstack(linked), e, q, c)
    oc, oq = sweep(q, c, q, c)
    lo, hi = float(single_c.min()), float(single_c.max())
    scores = {
        "zero router (single-model hull)": aiq(single_c, single_q, lo, hi),
        "learned router": aiq(np.r_[rc, single_c], np.r_[rq, single_q], lo, hi),
        "learned router (own points only)": aiq(rc, rq, lo, hi),
        "linked router (route-score links, with single models)": aiq(
            np.r_[lc, single_c], np.r_[lq, single_q], lo, hi
        ),
        "linked router (own points only)": aiq(lc, lq, lo, hi),
        "oracle": aiq(oc, oq, lo, hi),
    }
    for k, m in enumerate(models):
        scores[f"single: {m}"] = aiq([single_c[k]], [single_q[k]], lo, hi)
    return MultiResult(models, single_c, single_q, rc, rq, oc, oq, scores, len(q))


__all__ = ["LAMBDAS", "MultiResult", "evaluate_multi", "sweep", "upper_hull"]
