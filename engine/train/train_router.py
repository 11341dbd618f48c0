"""Train the learned router from ``../shared/data`` and export it as small sparse ONNX files.

Two models, both linear over ``engine.features`` (hashed n-grams folded to a smaller space, plus
the dense stats):
- ``router_difficulty.onnx``: three difficulty heads (math, code, general), each a logistic
  regression on the 7B-model outcome data (``multi_model_7b``; soft label = share of the 7 models
  that fail); the general head also learns from the RouterBench rows (share of 11 models that
  fail). It gets one indicator column per source benchmark while training, so it learns which
  prompts are hard *within* a benchmark, not which benchmark is hard.
- ``router_quality.onnx``: one success head per model in the data (the RouteLLM pair, the 11
  RouterBench models, the 7 open 7B models), each a logistic regression on that model's outcomes.
  These n-gram heads transfer poorly across benchmarks, so at run time a model with a *link*
  (``router.json``: ``p = sigmoid(a + b * route + c * level)``, fitted on that model's outcomes
  against the combined route score and, for the models of the multi-model rows, the difficulty's
  level; ``engine.eval.route_select.fit_links``) is scored through its link instead. The two
  pair models also get route-only links on the pair benchmarks (``pair_link``), which the
  engine takes instead with ``[engine] pair_links = true``.
``router.json`` holds the labels, the combined route score's knobs (``engine.router.route``) and
its standardization constants; the chat route family's knobs are chosen last, on the heads just
written (``engine.train.train_chat_route``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from engine.eval.data import PAIR_BENCHES, STRONG, WEAK, MultiRow, PairRow
from engine.features import DENSE_DIM, Features
from engine.router.route import RouteConfig

if TYPE_CHECKING:
    from engine.eval.route_select import Corpus, FittedRoute
    from engine.router.route import Link

F32 = npt.NDArray[np.float32]
DIFF_FOLD = 1 << 16
QUALITY_FOLD = 1 << 14
DIFF_HEADS = ("math", "code", "general")
HEAD_SOURCES: dict[str, frozenset[str]] = {
    "math": frozenset({"math", "gsm8k"}),
    "code": frozenset({"humaneval", "humaneval_js", "mbpp"}),
}


@dataclass(frozen=True, slots=True)
class Heads:
    """K linear heads over folded sparse + dense features: sigmoid(x @ W + d @ Wd + b)."""

    labels: tuple[str, ...]
    w_sparse: F32  # [fold, K]
    w_dense: F32  # [DENSE_DIM, K]
    bias: F32  # [K]

    def predict(self, feats: Sequence[Features]) -> F32:
        fold = self.w_sparse.shape[0]
        out = np.empty((len(feats), len(self.labels)), dtype=np.float32)
        for i, f in enumerate(feats):
            rows = self.w_sparse[f.indices % fold]
            out[i] = f.values @ rows + f.dense @ self.w_dense + self.bias
        return (1.0 / (1.0 + np.exp(-out))).astype(np.float32)

    @staticmethod
    def from_onnx(path: Path) -> Heads:
        """The heads a ``build_sparse_model`` file holds (its weights, exactly)."""
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        props = {p.key: p.value for p in model.metadata_props}
        return Heads(tuple(props["labels"].split(",")), w["W"], w["Wd"], w["b"])

    @staticmethod
    def stack(parts: Iterable[Heads]) -> Heads:
        ps = list(parts)
        return Heads(
            tuple(x for p in ps for x in p.labels),
            np.concatenate([p.w_sparse for p in ps], axis=1),
            np.concatenate([p.w_dense for p in ps], axis=1),
            np.concatenate([p.bias for p in ps]),
        )


def design(feats: Sequence[Features], fold: int, extra: npt.NDArray[np.float64] | None = None):  # type: ignore[no-untyped-def]
    """CSR matrix [folded sparse | dense | extra] for scikit-learn."""
    import scipy.sparse as sp

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, f in enumerate(feats):
        rows.extend([i] * len(f.indices))
        cols.extend((f.indices % fold).tolist())
        vals.extend(f.values.tolist())
    x = sp.csr_matrix((vals, (rows, cols)), shape=(len(feats), fold), dtype=np.float64)
    blocks = [x, sp.csr_matrix(np.stack([f.dense for f in feats]).astype(np.float64))]
    if extra is not None:
        blocks.append(sp.csr_matrix(extra))
    return sp.hstack(blocks).tocsr()


def fit_head(
    feats: Sequence[Features],
    target: npt.NDArray[np.float64],
    fold: int,
    label: str,
    groups: Sequence[str] | None = None,
    c: float = 1.0,
) -> Heads:
    """Logistic regression with soft labels in [0, 1] (each row twice, weighted y and 1 - y).

    ``groups``: one indicator column per group while fitting, dropped at export.
    """
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    extra = None
    if groups is not None:
        names = sorted(set(groups))
        extra = np.zeros((len(groups), len(names)))
        extra[np.arange(len(groups)), [names.index(g) for g in groups]] = 1.0
    x = design(feats, fold, extra)
    n = x.shape[0]
    y = np.clip(np.asarray(target, dtype=np.float64), 0.0, 1.0)
    xx = sp.vstack([x, x]).tocsr()
    yy = np.concatenate([np.ones(n), np.zeros(n)])
    ww = np.concatenate([y, 1.0 - y]) + 1e-6
    lr = LogisticRegression(C=c, max_iter=400).fit(xx, yy, sample_weight=ww)
    coef = lr.coef_[0]
    bias = float(lr.intercept_[0])
    if extra is not None:  # fold the mean group offset into the bias
        bias += float(coef[fold + DENSE_DIM :].mean())
    return Heads(
        (label,),
        coef[:fold].astype(np.float32).reshape(-1, 1),
        coef[fold : fold + DENSE_DIM].astype(np.float32).reshape(-1, 1),
        np.array([bias], dtype=np.float32),
    )


def difficulty_target(row: MultiRow) -> float:
    """Share of the row's models that fail it (0 = every model right)."""
    return 1.0 - float(np.mean(list(row.quality.values())))


def fit_difficulty(
    rows: Sequence[MultiRow],
    feats: Sequence[Features],
    c_general: float = 1.0,
    extra: Sequence[MultiRow] = (),
    extra_feats: Sequence[Features] = (),
) -> Heads:
    """Math, code and general difficulty heads from the 7B-model outcome rows.

    ``extra`` rows (RouterBench: 11 stronger models) join the general head only, each source with
    its own indicator column; ``c_general`` is that head's inverse regularization strength.
    """
    target = np.array([difficulty_target(r) for r in rows])
    parts = []
    for head in DIFF_HEADS:
        srcs = HEAD_SOURCES.get(head)
        idx = [i for i, r in enumerate(rows) if srcs is None or r.source in srcs]
        if not idx:  # held out entirely: fall back to all rows
            idx = list(range(len(rows)))
        fs = [feats[i] for i in idx]
        ys = target[idx]
        if srcs is None:
            groups = [rows[i].source for i in idx] + [f"rb:{r.source}" for r in extra]
            fs += list(extra_feats)
            ys = np.concatenate([ys, [difficulty_target(r) for r in extra]])
            parts.append(fit_head(fs, ys, DIFF_FOLD, head, groups=groups, c=c_general))
        else:
            parts.append(fit_head(fs, ys, DIFF_FOLD, head))
    return Heads.stack(parts)


def head_of_source(source: str) -> str:
    for head, srcs in HEAD_SOURCES.items():
        if source in srcs:
            return head
    return "general"


def head_stats(
    diff: Heads, rows: Sequence[MultiRow], feats: Sequence[Features]
) -> dict[str, tuple[float, float]]:
    """Mean and std of each head's prediction over the training rows that head judges."""
    pred = diff.predict(feats)
    out = {}
    for k, head in enumerate(diff.labels):
        sel = [i for i, r in enumerate(rows) if head_of_source(r.source) == head]
        x = pred[sel, k] if sel else pred[:, k]
        out[head] = (float(x.mean()), float(x.std() or 1.0))
    return out


def fit_quality(
    pair: Sequence[PairRow],
    pair_feats: Sequence[Features],
    multi: Sequence[MultiRow],
    multi_feats: Sequence[Features],
) -> Heads:
    """One success head per model, fitted on every row that has that model's outcome."""
    data: dict[str, tuple[list[Features], list[float]]] = {}
    for name, attr in ((STRONG, "strong"), (WEAK, "weak")):
        if pair:
            data[name] = (list(pair_feats), [float(getattr(r, attr)) for r in pair])
    for r, f in zip(multi, multi_feats, strict=True):
        for name, q in r.quality.items():
            fs, ys = data.setdefault(name, ([], []))
            fs.append(f)
            ys.append(q)
    parts = [
        fit_head(fs, np.asarray(ys), QUALITY_FOLD, name) for name, (fs, ys) in sorted(data.items())
    ]
    return Heads.stack(parts)


def train(data_dir: Path, out_dir: Path) -> dict[str, object]:
    """Train on all the data and write router_{difficulty,quality}.onnx + router.json.

    The combined route score's knobs are chosen by LOBO over the two pair benchmarks (each
    scored by heads trained without it); the shipped heads are then fitted on every row.
    """
    from engine.eval.pair import load_corpus
    from engine.eval.route_select import fit_route, select
    from engine.onnx_sparse import build_sparse_model

    corpus = load_corpus(data_dir)
    cfg, table = select(corpus, PAIR_BENCHES, [])
    fitted = fit_route(corpus, [], cfg.c_general)
    pair = [r for b in PAIR_BENCHES for r in corpus.pair[b].rows]
    pf = [f for b in PAIR_BENCHES for f in corpus.pair[b].feats]
    qual = fit_quality(
        pair, pf, [*corpus.seven, *corpus.bench], [*corpus.seven_feats, *corpus.bench_feats]
    )
    links, pair_links = all_links(corpus, fitted, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, heads in (("router_difficulty", fitted.diff), ("router_quality", qual)):
        blob = build_sparse_model(
            heads.w_sparse, heads.w_dense, heads.bias, "sigmoid", labels=list(heads.labels)
        )
        (out_dir / f"{name}.onnx").write_bytes(blob)
    meta: dict[str, object] = {
        "version": 2,
        "route": cfg.to_json(),
        "length": list(fitted.length[cfg.length_feature]),
        "difficulty": {h: list(v) for h, v in fitted.heads.items()},
        "quality_models": list(qual.labels),
        "link": link_json(links),
        "pair_link": link_json(pair_links),
    }
    (out_dir / "router.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    from engine.train.train_chat_route import train as train_chat

    chat = train_chat(data_dir, out_dir)  # the chat family's knobs for these heads
    return {
        "route": chat["route"],
        "route_selection_apgr": round(table[cfg], 4),
        "difficulty_heads": list(fitted.diff.labels),
        "quality_models": len(qual.labels),
        "rows": {"pair": len(pair), "7b": len(corpus.seven), "routerbench": len(corpus.bench)},
    }


def all_links(
    corpus: Corpus, fitted: FittedRoute, cfg: RouteConfig
) -> tuple[dict[str, Link], dict[str, Link]]:
    """Every model's link (GPT-4-1106 and the others of the multi-model rows on those rows,
    Mixtral-Instruct on the pair benchmarks), and the pair models' links on the pair benchmarks
    (``engine.eval.route_select.fit_links``, ``fit_pair_links``)."""
    from engine.eval.route_select import fit_links, fit_pair_links

    pair = [corpus.pair[b] for b in PAIR_BENCHES]
    links = fit_links(
        fitted, cfg, pair, [corpus.seven, corpus.bench], [corpus.seven_feats, corpus.bench_feats]
    )
    return links, fit_pair_links(fitted, cfg, pair)


def link_json(links: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """``router.json``'s ``link``: ``[a, b, c]`` per model, ``p = sigmoid(a + b * route + c *
    level)``."""
    return {m: [round(float(v), 6) for v in link] for m, link in sorted(links.items())}


def refit_links(data_dir: Path, out_dir: Path) -> dict[str, object]:
    """``modelroute train --only links``: every link refitted on the heads already in
    ``out_dir`` (the committed ones by default), nothing else refitted; then the chat family's
    step, whose preference links bridge from GPT-4-1106's."""
    from engine.eval.pair import load_corpus
    from engine.eval.route_select import FittedRoute
    from engine.train.train_chat_route import train as train_chat

    path = out_dir / "router.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: train the router first (modelroute train --only router)")
    meta = json.loads(path.read_text(encoding="utf-8"))
    cfg = RouteConfig.from_json(meta["route"]).shared()
    diff = Heads.from_onnx(out_dir / "router_difficulty.onnx")
    heads = {str(h): (float(v[0]), float(v[1])) for h, v in meta["difficulty"].items()}
    length = (float(meta["length"][0]), float(meta["length"][1]))
    fitted = FittedRoute(diff, heads, {cfg.length_feature: length})
    links, pair_links = all_links(load_corpus(data_dir), fitted, cfg)
    meta["link"] = link_json(links)
    meta["pair_link"] = link_json(pair_links)
    meta.pop("preference_links", None)  # the chat step below lists them again, last
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    chat = train_chat(data_dir, out_dir)
    return {"links": len(links), "level_links": sum(1 for v in links.values() if v[2] != 0.0),
            "preference_links": chat["preference_links"]}  # fmt: skip
