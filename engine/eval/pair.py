"""Leave-one-benchmark-out routers for the strong/weak pair, and their scores on the held-out set.

For a held-out benchmark B (GSM8K or MMLU): the difficulty heads are trained on the 7B-model data
without B's files (the general head also on the RouterBench rows), the per-model heads on the
other pair benchmark plus the 7B rows without B; the combined score's knobs are chosen by an
inner LOBO on the other pair benchmark, with heads trained without B and without it. Nothing in
a router, nor any choice about it, saw B.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.data import (
    PAIR_BENCHES,
    STRONG,
    WEAK,
    PairRow,
    load_7b,
    load_pair,
    load_routerbench,
)
from engine.eval.metrics import PairCurve, apgr, cpt, decile_curve, savings_at
from engine.eval.route_select import (
    Corpus,
    FittedRoute,
    PairSet,
    fit_links,
    fit_pair_links,
    fit_route,
    link_probs,
    select,
)
from engine.eval.tasks import sensitivity, tasks_of
from engine.features import Features, featurize
from engine.router.prior import head_for
from engine.router.route import Link, RouteConfig
from engine.train.train_router import fit_quality

Arr = npt.NDArray[np.float64]
# what the policy ranks by, p(strong) - p(weak): in a decision of the pair alone (their links on
# the pair benchmarks), and among other linked models (GPT-4-1106 on its level link)
GAP_PAIR = "policy p gap, the pair alone (pair links)"
GAP_DEFAULT = "policy p gap, default links (the pair among other models)"
# the same under the shipped route knobs instead of the inner-chosen ones (the default-link gap
# depends on them; docs/router.md, "GPT-4-1106's footing")
COMBINED_SHIPPED = "combined, shipped knobs"
GAP_DEFAULT_SHIPPED = "policy p gap, default links, shipped knobs"
ROUTERS = (
    "random",
    "length only",
    "task only",
    "difficulty only",
    "n-gram per-model heads",
    "combined (length + difficulty)",
    GAP_PAIR,
    GAP_DEFAULT,
    COMBINED_SHIPPED,
    GAP_DEFAULT_SHIPPED,
    "oracle",
)
COMBINED = "combined (length + difficulty)"


@dataclass(frozen=True, slots=True)
class PairResult:
    bench: str
    router: str
    curve: PairCurve
    apgr: float
    cpt50: float
    cpt80: float
    savings95: float


def load_corpus(data_dir: Path, progress: bool = True) -> Corpus:
    """Every pair benchmark, the 7B-model rows and the RouterBench rows, featurized once."""
    from tqdm import tqdm

    def feats(prompts: Sequence[str], what: str) -> list[Features]:
        it = tqdm(prompts, desc=f"featurize {what}", leave=False, disable=not progress)
        return [featurize(p) for p in it]

    pair = {}
    for b in PAIR_BENCHES:
        rows = load_pair(data_dir, b)
        ps = [r.prompt for r in rows]
        pair[b] = PairSet(rows, feats(ps, b), tasks_of(ps, b))
    seven, bench = load_7b(data_dir), load_routerbench(data_dir)
    return Corpus(
        pair,
        seven,
        feats([r.prompt for r in seven], "7B"),
        bench,
        feats([r.prompt for r in bench], "RouterBench"),
    )


def lobo_scores(
    corpus: Corpus, held: str, shipped: RouteConfig
) -> tuple[list[PairRow], dict[str, Arr], RouteConfig]:
    """Scores of every baseline router on ``held``, each trained without ``held``; the combined
    score's knobs are chosen by inner LOBO on the other pair benchmark(s), and also set to the
    ``shipped`` ones for two rows."""
    other = [b for b in PAIR_BENCHES if b != held]
    cfg, _ = select(corpus, other, [held])
    fitted = fit_route(corpus, [held], cfg.c_general)
    test = corpus.pair[held]
    tf, tasks = test.feats, test.tasks
    keep = [i for i, r in enumerate(corpus.seven) if r.source != held]
    train_pair = [r for b in other for r in corpus.pair[b].rows]
    qual = fit_quality(
        train_pair,
        [f for b in other for f in corpus.pair[b].feats],
        [corpus.seven[i] for i in keep],
        [corpus.seven_feats[i] for i in keep],
    )
    route, gap = _gaps(corpus, held, fitted, cfg)
    s_fit = (
        fitted
        if shipped.c_general == cfg.c_general
        else fit_route(corpus, [held], shipped.c_general)
    )
    s_route, s_gap = _gaps(corpus, held, s_fit, shipped)
    gap |= {COMBINED_SHIPPED: s_route, GAP_DEFAULT_SHIPPED: s_gap[GAP_DEFAULT]}
    q = qual.predict(tf)
    ps, pw = q[:, qual.labels.index(STRONG)], q[:, qual.labels.index(WEAK)]
    rng = np.random.default_rng(0)
    strong = np.array([r.strong for r in test.rows], dtype=np.float64)
    weak = np.array([r.weak for r in test.rows], dtype=np.float64)
    scores: dict[str, Arr] = {
        "random": rng.random(len(tf)),
        "length only": np.array([f.dense[0] for f in tf], dtype=np.float64),
        "task only": np.array([sensitivity(t) for t in tasks]) + 1e-3 * rng.random(len(tf)),
        "difficulty only": fitted.scores(tf, tasks, RouteConfig(cfg.c_general, 0, 0.0)),
        "n-gram per-model heads": (ps - pw).astype(np.float64),
        COMBINED: route,
        **gap,
        "oracle": (strong - weak) + 1e-3 * rng.random(len(tf)),
    }
    return test.rows, scores, cfg


def _gaps(
    corpus: Corpus, held: str, fitted: FittedRoute, cfg: RouteConfig
) -> tuple[Arr, dict[str, Arr]]:
    """The route score of ``held``'s prompts, and the policy's p gap on the pair links and on
    the default links (GPT-4-1106's also reading its RouterBench rows, as in the engine)."""
    other = [corpus.pair[b] for b in PAIR_BENCHES if b != held]
    test = corpus.pair[held]
    route, level = fitted.route_and_level(test.feats, [head_for(t) for t in test.tasks], cfg)
    pair_links = fit_pair_links(fitted, cfg, other)
    links = fit_links(fitted, cfg, other, [corpus.bench], [corpus.bench_feats])
    return route, {GAP_PAIR: _gap(pair_links, route, level), GAP_DEFAULT: _gap(links, route, level)}


def _gap(links: dict[str, Link], route: Arr, level: Arr) -> Arr:
    p = link_probs([links[STRONG], links[WEAK]], route, level)
    out: Arr = p[:, 0] - p[:, 1]
    return out


def evaluate_pair(
    data_dir: Path,
    progress: bool = True,
    corpus: Corpus | None = None,
    shipped: RouteConfig | None = None,
) -> tuple[list[PairResult], dict[str, RouteConfig]]:
    """Every router on every pair benchmark, LOBO; also the route config chosen for each.
    ``shipped``: the shipped route knobs (default: ``RouteConfig()``)."""
    corpus = corpus or load_corpus(data_dir, progress)
    out: list[PairResult] = []
    chosen: dict[str, RouteConfig] = {}
    for held in PAIR_BENCHES:
        rows, scores, chosen[held] = lobo_scores(corpus, held, (shipped or RouteConfig()).shared())
        s = [r.strong for r in rows]
        w = [r.weak for r in rows]
        for name in ROUTERS:
            c = decile_curve(scores[name], s, w)
            out.append(PairResult(held, name, c, apgr(c), cpt(c, 0.5), cpt(c, 0.8), savings_at(c)))
    return out, chosen
