"""Train the slow-path router: difficulty heads over MiniLM sentence embeddings (+ n-grams).

The same recipe as ``train_router`` with another design matrix (``engine.eval.embed_compare``):
knobs chosen by the best mean APGR over the two pair benchmarks, each scored by heads trained
without it; the math and code heads' C chosen by 5-fold CV inside their own training rows
(``engine.eval.head_cv``); then every head refitted on all rows, and a link ``p = sigmoid(a + b * route)`` per
model with outcomes. Written as ``router_embed.onnx`` (the three heads as one sparse ONNX model
whose dense input is the featurizer's dense stats followed by the scaled embedding) and
``router_embed.json``. Run with ``modelroute train --only embed_router`` (it embeds the training
prompts once into the cache, ~15 CPU-minutes on one core; a few minutes when cached).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.data import PAIR_BENCHES, STRONG, WEAK
from engine.eval.embed_compare import MatrixRoute, View, build_view, fit_matrix_route, select_matrix
from engine.eval.route_select import Corpus, fit_link
from engine.features import DENSE_DIM
from engine.router.prior import head_for
from engine.router.route import RouteConfig
from engine.train.train_router import DIFF_FOLD, head_of_source

Arr = npt.NDArray[np.float64]
KIND = "embedding"
# Heads the slow path leaves to the fast n-gram router: on math (GSM8K held out) the embedding
# route ranked worse than the n-gram one (see docs/router.md), so math prompts keep the fast score.
FAST_HEADS = ("math",)


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


def links(
    view: View, corpus: Corpus, fitted: MatrixRoute, cfg: RouteConfig
) -> dict[str, list[float]]:
    """A link per model: the pair models on both pair benchmarks, the others on the 7B and
    RouterBench rows (one indicator per source while fitting); rows judged by a head left to
    the fast router (``FAST_HEADS``) are not used."""
    out: dict[str, list[float]] = {}
    r_all, strong, weak, groups = [], [], [], []
    for b in PAIR_BENCHES:
        heads = [head_for(t) for t in corpus.pair[b].tasks]
        r = fitted.scores(view.pair[b], heads, cfg)
        for i, row in enumerate(corpus.pair[b].rows):
            if heads[i] not in FAST_HEADS:
                r_all.append(float(r[i]))
                strong.append(float(row.strong))
                weak.append(float(row.weak))
                groups.append(b)
    for name, y in ((STRONG, strong), (WEAK, weak)):
        out[name] = [round(v, 6) for v in fit_link(np.array(r_all), np.array(y), groups)]
    for rows, part in ((corpus.seven, view.seven), (corpus.bench, view.bench)):
        heads = [head_of_source(x.source) for x in rows]
        rs = fitted.scores(part, heads, cfg)
        for name in sorted({m for x in rows for m in x.quality}):
            if name in out:
                continue
            keep = [
                i for i, x in enumerate(rows) if name in x.quality and heads[i] not in FAST_HEADS
            ]
            q = np.array([rows[i].quality[name] for i in keep])
            fit = fit_link(rs[keep], q, [rows[i].source for i in keep])
            out[name] = [round(v, 6) for v in fit]
    return out


def train(data_dir: Path, out_dir: Path) -> dict[str, object]:
    from engine.eval.embed_data import MAX_TOKENS, corpus_embeddings
    from engine.eval.pair import load_corpus
    from engine.onnx_sparse import build_sparse_model

    corpus = load_corpus(data_dir)
    emb = corpus_embeddings(corpus)
    emb_dim = emb.seven.shape[1]
    view = replace(build_view(KIND, corpus, emb), cv_heads=True)
    cfg = select_matrix(view, corpus, PAIR_BENCHES, [])
    fitted = fit_matrix_route(view, corpus.seven, corpus.bench, [], cfg.c_general)
    labels = list(fitted.heads)
    parts = [split_coef(KIND, fitted.heads[h].coef, emb_dim) for h in labels]
    w_sparse = np.stack([p[0] for p in parts], axis=1).astype(np.float32)
    w_dense = np.stack([p[1] for p in parts], axis=1).astype(np.float32)
    bias = np.array([fitted.heads[h].bias for h in labels], dtype=np.float32)
    out_dir.mkdir(parents=True, exist_ok=True)
    blob = build_sparse_model(w_sparse, w_dense, bias, "sigmoid", labels=labels)
    (out_dir / "router_embed.onnx").write_bytes(blob)
    meta = {
        "version": 1,
        "features": KIND,
        "fast_heads": list(FAST_HEADS),
        "max_tokens": MAX_TOKENS,
        "embedding_scale": float(np.sqrt(emb_dim)),
        "route": cfg.to_json(),
        "head_c": fitted.head_c,
        "length": list(fitted.length[cfg.length_feature]),
        "difficulty": {h: list(v) for h, v in fitted.head_stats.items()},
        "link": links(view, corpus, fitted, cfg),
    }
    (out_dir / "router_embed.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return {
        "features": KIND,
        "route": cfg.to_json(),
        "head_c": fitted.head_c,
        "onnx_bytes": len(blob),
    }
