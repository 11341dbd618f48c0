"""Train the slow-path router: difficulty heads over MiniLM sentence embeddings, and per task
head the route the wide blind rule chooses on all the data.

The same recipe as ``train_router`` with another design matrix (``engine.eval.matrix_route``):
knobs chosen by the best mean APGR over the two pair benchmarks, each scored by heads trained
without it; the math and code heads' C chosen by 5-fold CV inside their own training rows
(``engine.eval.head_cv``); then every head refitted on all rows. The route of each task head
(n-gram, embedding or their mean) is the deployable wide choice (``engine.eval.wide_deploy``,
rule of ``engine.eval.wide_select`` with training-row constants) on all the data: every source
validates, scored by both routes refitted without it. The runtime's n-gram route is the fast
router's (``router.json``), so its constants come from the fast router's scores of the training
rows; the embedding route's from the refitted heads'. Then a link ``p = sigmoid(a + b * score)``
per model on the slow heads' score (rows whose head stays on the n-gram route left out).
Written as ``router_embed.onnx`` (the three heads as one sparse ONNX model whose dense input is
the featurizer's dense stats followed by the scaled embedding) and ``router_embed.json``. Run
with ``modelroute train --only embed_router`` after the fast router (it embeds the training
prompts once into the cache, ~15 CPU-minutes on one core; about 10 minutes when cached).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.data import STRONG, WEAK
from engine.eval.embed_compare import DEPLOYED
from engine.eval.matrix_route import EMBED_CV, MatrixRoute, View, build_view, fit_matrix_route
from engine.eval.route_select import Corpus, fit_link
from engine.eval.wide_deploy import RUNTIME_NAMES, Scale, fit_scale, pick, scaled_candidates
from engine.eval.wide_select import WideChoice, deployed_evidence, row_heads, train_choices
from engine.features import DENSE_DIM, Features
from engine.router.learned import MODELS_DIR, LearnedRouter
from engine.router.prior import head_for
from engine.router.route import RouteConfig, route_score
from engine.train.train_router import DIFF_FOLD

Arr = npt.NDArray[np.float64]
KIND = "embedding"  # the layout of the exported heads' inputs
KINDS = ("n-gram", EMBED_CV)  # the wide choice's two routes
CANDIDATE = {v: k for k, v in RUNTIME_NAMES.items()}  # runtime route name -> candidate name


def split_coef(kind: str, coef: Arr, emb_dim: int) -> tuple[Arr, Arr]:
    """A head's coefficients over the design matrix -> (sparse rows, dense rows) where the dense
    input is [featurizer dense stats | scaled embedding]."""
    zeros_e = np.zeros(emb_dim)
    if kind == "n-gram":
        return coef[:DIFF_FOLD], np.concatenate([coef[DIFF_FOLD:], zeros_e])
    if kind == "embedding":
        return np.zeros(1), np.concatenate([coef[emb_dim:], coef[:emb_dim]])
    if kind == "embedding + n-gram":
        sparse = coef[:DIFF_FOLD]
        return sparse, np.concatenate([coef[DIFF_FOLD : DIFF_FOLD + DENSE_DIM], coef[-emb_dim:]])
    raise ValueError(f"unknown feature set {kind!r}")


def fast_route_scores(models_dir: Path, feats: Sequence[Features], heads: Sequence[str]) -> Arr:
    """The shipped fast router's route score of each prompt (what the runtime's n-gram route
    is), from its difficulty model and constants."""
    parts = LearnedRouter.load(models_dir).flat_parts()
    if parts is None:
        raise RuntimeError("the fast router has models without a link; train it first")
    idx = {h: i for i, h in enumerate(parts.difficulty.labels)}
    cfg, st = parts.route, parts.stats
    return np.array(
        [
            route_score(
                float(parts.difficulty.predict(f)[idx[h]]),
                h,
                float(f.dense[cfg.length_feature]),
                cfg,
                st,
            )
            for f, h in zip(feats, heads, strict=True)
        ]
    )


@dataclass(frozen=True, slots=True)
class Rows:
    """One part of the corpus: its rows' heads and both route scores."""

    heads: list[str]
    ngram: Arr
    embed: Arr


def score_parts(
    corpus: Corpus, view: View, fitted: MatrixRoute, cfg: RouteConfig, models_dir: Path
) -> dict[str, Rows]:
    """Every pair benchmark ("pair:<name>"), the 7B rows ("seven") and the RouterBench rows
    ("bench"), each prompt under the head the engine's task classifier gives it."""
    out = {}
    for b, ps in corpus.pair.items():
        heads = [head_for(t) for t in ps.tasks]
        out[f"pair:{b}"] = Rows(
            heads,
            fast_route_scores(models_dir, ps.feats, heads),
            fitted.scores(view.pair[b], heads, cfg),
        )
    for name, rows, feats, part in (
        ("seven", corpus.seven, corpus.seven_feats, view.seven),
        ("bench", corpus.bench, corpus.bench_feats, view.bench),
    ):
        heads = row_heads(rows)
        out[name] = Rows(
            heads, fast_route_scores(models_dir, feats, heads), fitted.scores(part, heads, cfg)
        )
    return out


def slow_scores(rows: Rows, routes: dict[str, str], scale: Scale) -> Arr:
    """The runtime's score of each row under its head's route (``SlowRouter.combined``)."""
    cands = scaled_candidates(rows.ngram, rows.embed, scale)
    return pick(rows.heads, cands, {h: CANDIDATE[r] for h, r in routes.items()})


def links(
    corpus: Corpus, parts: dict[str, Rows], routes: dict[str, str], scale: Scale
) -> dict[str, list[float]]:
    """A link per model on the slow heads' score: the pair models on both pair benchmarks, the
    others on the 7B and RouterBench rows (one indicator per source while fitting); rows whose
    head takes the n-gram route (the fast router's output) are not used."""
    out: dict[str, list[float]] = {}
    r_all, strong, weak, groups = [], [], [], []
    for b, ps in corpus.pair.items():
        rows = parts[f"pair:{b}"]
        r = slow_scores(rows, routes, scale)
        for i, row in enumerate(ps.rows):
            if routes.get(rows.heads[i]) != "ngram":
                r_all.append(float(r[i]))
                strong.append(float(row.strong))
                weak.append(float(row.weak))
                groups.append(b)
    for name, y in ((STRONG, strong), (WEAK, weak)):
        out[name] = [round(v, 6) for v in fit_link(np.array(r_all), np.array(y), groups)]
    for multi, key in ((corpus.seven, "seven"), (corpus.bench, "bench")):
        rows = parts[key]
        rs = slow_scores(rows, routes, scale)
        for name in sorted({m for x in multi for m in x.quality}):
            if name in out:
                continue
            keep = [
                i
                for i, x in enumerate(multi)
                if name in x.quality and routes.get(rows.heads[i]) != "ngram"
            ]
            q = np.array([multi[i].quality[name] for i in keep])
            fit = fit_link(rs[keep], q, [multi[i].source for i in keep])
            out[name] = [round(v, 6) for v in fit]
    return out


def choose_routes(
    corpus: Corpus, views: dict[str, View]
) -> tuple[list[WideChoice], dict[str, RouteConfig]]:
    """The deployable wide choice on all the data, and each route's knobs (the best mean APGR
    over the pair benchmarks, each scored without it)."""
    heads = (row_heads(corpus.seven), row_heads(corpus.bench))
    cfgs, ev = deployed_evidence(corpus, views, KINDS, heads)
    return train_choices(DEPLOYED, ev), cfgs


def export_heads(fitted: MatrixRoute, emb_dim: int) -> bytes:
    from engine.onnx_sparse import build_sparse_model

    labels = list(fitted.heads)
    parts = [split_coef(KIND, fitted.heads[h].coef, emb_dim) for h in labels]
    w_sparse = np.stack([p[0] for p in parts], axis=1).astype(np.float32)
    w_dense = np.stack([p[1] for p in parts], axis=1).astype(np.float32)
    bias = np.array([fitted.heads[h].bias for h in labels], dtype=np.float32)
    return build_sparse_model(w_sparse, w_dense, bias, "sigmoid", labels=labels)


def train(data_dir: Path, out_dir: Path) -> dict[str, object]:
    from engine.eval.embed_data import MAX_TOKENS, corpus_embeddings
    from engine.eval.pair import load_corpus

    corpus = load_corpus(data_dir)
    emb = corpus_embeddings(corpus)
    emb_dim = emb.seven.shape[1]
    views = {k: build_view(k, corpus, emb) for k in KINDS}
    choices, cfgs = choose_routes(corpus, views)
    routes = {c.head: RUNTIME_NAMES[c.route] for c in choices}
    view, cfg = views[EMBED_CV], cfgs[EMBED_CV]
    fitted = fit_matrix_route(view, corpus.seven, corpus.bench, [], cfg.c_general)
    # the fast router beside the output (as ``SlowRouter.load`` finds it), else the shipped one
    fast_dir = out_dir if (out_dir / "router.json").exists() else MODELS_DIR
    parts = score_parts(corpus, view, fitted, cfg, fast_dir)
    scale = fit_scale(
        np.concatenate([parts["seven"].ngram, parts["bench"].ngram]),
        np.concatenate([parts["seven"].embed, parts["bench"].embed]),
    )
    blob = export_heads(fitted, emb_dim)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "router_embed.onnx").write_bytes(blob)
    fast_cfg = json.loads((fast_dir / "router.json").read_text(encoding="utf-8"))["route"]
    meta = {
        "version": 2,
        "features": KIND,
        "routes": routes,
        "scale": scale.to_json(),
        "fast_heads": sorted(h for h, r in routes.items() if r == "ngram"),
        "choice": {
            c.head: {"route": routes[c.head], "means": c.means, "sets": [x[0] for x in c.per_set]}
            for c in choices
        },
        "max_tokens": MAX_TOKENS,
        "embedding_scale": float(np.sqrt(emb_dim)),
        "route": cfg.to_json(),
        "head_c": fitted.head_c,
        "length": list(fitted.length[cfg.length_feature]),
        "difficulty": {h: list(v) for h, v in fitted.head_stats.items()},
        "link": links(corpus, parts, routes, scale),
    }
    (out_dir / "router_embed.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return {
        "routes": routes,
        "route": cfg.to_json(),
        "head_c": fitted.head_c,
        # the choice's n-gram candidate should be the fast router's route (same knobs)
        "ngram_knobs_of_the_choice": cfgs["n-gram"].to_json(),
        "fast_router_knobs": fast_cfg,
        "onnx_bytes": len(blob),
    }
