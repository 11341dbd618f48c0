"""RouterBench rows within the benchmarks (RouterBench's own protocol), and the nested choice of
the link form for the LOBO table.

``evaluate_multi_cv``: the 2,205 rows are split into 5 folds (stratified by set, seed 0). For each
fold, the difficulty heads learn from the 7B-model rows (without their copies of the RouterBench
sets: many of their prompts are the same questions, so a test fold's own prompts would train the
heads) and the RouterBench rows of the other folds, the links and the per-model n-gram heads from
those RouterBench rows (GPT-4-1106's from them and the pair benchmarks, as in the engine), and the
fold is scored as in ``engine.eval.multi`` (same sweep, same AIQ). This measures a router on traffic
like the traffic it was trained on; LOBO measures it on a benchmark it never saw. The figure that
counts for the targets is LOBO's.

``choose_form(corpus, cfg, held)``: the same 5-fold scoring over the RouterBench rows of the
*other* sets only, and the link form (``FORMS``) with the best AIQ there (with the single models;
a tie goes to the first form). Nothing of ``held`` is read. It is a within-benchmark choice made
for a LOBO score: with two training sets, a leave-one-set-out inside them would fit the links on
one set, where the level and the per-source indicators cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.eval.data import PAIR_BENCHES, ROUTERBENCH_MODELS, ROUTERBENCH_SETS
from engine.eval.multi import (
    FORMS,
    HEADS,
    LINKED,
    aiq_gain,
    aiq_table,
    matrix,
    picks,
    scored_links,
)
from engine.eval.route_select import Corpus, fit_route
from engine.router.route import RouteConfig
from engine.train.train_router import fit_quality

Arr = npt.NDArray[np.float64]
FOLDS = 5


@dataclass(frozen=True, slots=True)
class MultiCvResult:
    aiq: dict[str, float]
    n_rows: int
    gain: dict[str, tuple[float, float, float]]  # router - hull: mean, interval


def folds(
    corpus: Corpus, rows: list[int] | None = None, k: int = FOLDS, seed: int = 0
) -> npt.NDArray[np.int64]:
    """A fold per RouterBench row of ``rows`` (default: all), each set spread evenly."""
    rows = list(range(len(corpus.bench))) if rows is None else rows
    rng = np.random.default_rng(seed)
    out = np.zeros(len(rows), dtype=np.int64)
    for s in sorted({corpus.bench[i].source for i in rows}):
        idx = np.array([j for j, i in enumerate(rows) if corpus.bench[i].source == s])
        rng.shuffle(idx)
        out[idx] = np.arange(len(idx)) % k
    return out


def cv_probs(
    corpus: Corpus,
    cfg: RouteConfig,
    rows: list[int],
    exclude: Collection[str] = (),
    with_heads: bool = True,
    progress: bool = False,
) -> tuple[dict[str, Arr], Arr]:
    """Out-of-fold success probabilities of the RouterBench rows ``rows`` per router (the link
    forms, and the per-model n-gram heads when ``with_heads``), and each row's estimated costs
    (the models' mean cost on the training folds). The 7B rows of ``exclude`` and of every
    RouterBench set are left out of the difficulty heads."""
    from tqdm import tqdm

    skip = set(exclude) | set(ROUTERBENCH_SETS)
    pair = [corpus.pair[b] for b in PAIR_BENCHES if b in corpus.pair]
    m = len(ROUTERBENCH_MODELS)
    fold = folds(corpus, rows)
    util = {name: np.zeros((len(rows), m)) for name in (*FORMS, *([HEADS] if with_heads else []))}
    est = np.zeros((len(rows), m))
    for k in tqdm(range(FOLDS), desc="RouterBench 5-fold", disable=not progress):
        tr = [i for j, i in enumerate(rows) if fold[j] != k]
        te = np.flatnonzero(fold == k)
        tr_rows, tr_feats = [corpus.bench[i] for i in tr], [corpus.bench_feats[i] for i in tr]
        te_rows = [corpus.bench[rows[j]] for j in te]
        te_feats = [corpus.bench_feats[rows[j]] for j in te]
        fitted = fit_route(corpus, skip, cfg.c_general, tr)
        forms = scored_links(fitted, cfg, tr_rows, tr_feats, te_rows, te_feats, pair)
        for form, p in forms.items():
            util[form][te] = p
        if with_heads:
            heads = fit_quality([], [], tr_rows, tr_feats)
            order = [heads.labels.index(x) for x in ROUTERBENCH_MODELS]
            util[HEADS][te] = heads.predict(te_feats)[:, order]
        est[te] = matrix(tr_rows, "cost").mean(axis=0)
    return util, est


def evaluate_multi_cv(corpus: Corpus, cfg: RouteConfig, progress: bool = True) -> MultiCvResult:
    rows = list(range(len(corpus.bench)))
    util, est = cv_probs(corpus, cfg, rows, progress=progress)
    q, c = matrix(corpus.bench, "quality"), matrix(corpus.bench, "cost")
    scores, _ = aiq_table(q, c, est, util)
    pk = picks(util[LINKED], est)
    gain = {f"{LINKED}, with single models": aiq_gain(pk, q, c),
            f"{LINKED}, own points only": aiq_gain(pk, q, c, own=True)}  # fmt: skip
    return MultiCvResult(scores, len(rows), gain)


def choose_form(corpus: Corpus, cfg: RouteConfig, held: str) -> tuple[str, dict[str, float]]:
    """The link form for ``held``, and each form's AIQ (with the single models) on the other
    sets' rows, out of fold."""
    rows = [i for i, r in enumerate(corpus.bench) if r.source != held]
    util, est = cv_probs(corpus, cfg, rows, exclude={held}, with_heads=False)
    picked = [corpus.bench[i] for i in rows]
    q, c = matrix(picked, "quality"), matrix(picked, "cost")
    scores, _ = aiq_table(q, c, est, util)
    inner = {form: scores[f"{form}, with single models"] for form in FORMS}
    best = max(FORMS, key=lambda f: (inner[f], -FORMS.index(f)))
    return best, inner
