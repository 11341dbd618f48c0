"""The learned router at run time: two sparse ONNX models and a small JSON of constants.

``score(req, task)`` returns the difficulty (the task family's head) and every known model's
success probability: ``sigmoid(a_m + b_m * route_score + c_m * level)`` for a model with a fitted
link (an item-response-style curve of that model against the combined length + difficulty score,
higher route score = harder, and the difficulty's level across benchmarks,
``engine.router.route.difficulty_level``; ``c_m = 0`` for Mixtral-Instruct, and for both pair
models with ``pair_links``), else its n-gram
head. Models not in the data are placed with ``engine.router.prior.prior_quality`` from their
config ability.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from engine._heads import links
from engine.onnx_sparse import SparseHead, SparseModel
from engine.router.base import RouterOutput
from engine.router.prior import family_for, head_for, prior_quality
from engine.router.route import (
    Link,
    RouteConfig,
    RouteStats,
    as_link,
    difficulty_level,
    route_score,
)
from engine.signals.base import RequestView
from modelroute.domain import TaskType

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class FlatRouter(NamedTuple):
    """``LearnedRouter.score`` spelled as data: the difficulty model, per task the index of its
    head's output, the head's name and the route family's, and the route score's and links'
    constants."""

    difficulty: SparseHead
    head: Mapping[TaskType, tuple[int, str, str]]
    route: RouteConfig
    stats: RouteStats
    link_names: tuple[str, ...]
    link_a: tuple[float, ...]
    link_b: tuple[float, ...]
    link_c: tuple[float, ...]


def read_meta(
    models_dir: Path, chat_route: bool = True, pair_links: bool = False
) -> dict[str, object]:
    """``router.json``; without the route families' own knobs when ``chat_route`` is False; with
    the pair models' links on the pair benchmarks (``pair_link``) in place of theirs in ``link``
    when ``pair_links`` (``[engine] pair_links``)."""
    path = models_dir / "router.json"
    meta: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    route = meta.get("route")
    if not chat_route and isinstance(route, dict):
        meta["route"] = {k: v for k, v in route.items() if k != "families"}
    if pair_links:
        link, pair = meta.get("link", {}), meta.get("pair_link")
        if not isinstance(pair, dict) or not isinstance(link, dict):
            raise ValueError(f"{path}: no pair_link (retrain: modelroute train --only links)")
        meta["link"] = {**link, **pair}
    return meta


class LearnedRouter:
    """Implements ``engine.router.base.Router``; thread-safe (onnxruntime sessions are)."""

    def __init__(self, difficulty: SparseHead, quality: SparseHead, meta: Mapping[str, object]):
        self._diff = difficulty
        self._qual = quality
        self._heads = {h: i for i, h in enumerate(difficulty.labels)}
        length = meta["length"]
        stats = meta["difficulty"]
        route = meta.get("route", {"length_weight": 1.0})
        assert isinstance(length, list) and isinstance(stats, dict) and isinstance(route, dict)
        self._route = RouteConfig.from_json(route)
        self._stats = RouteStats(
            {str(k): (float(v[0]), float(v[1])) for k, v in stats.items()},
            (float(length[0]), float(length[1])),
        )
        link = meta.get("link", {})
        assert isinstance(link, dict)
        self._link = {str(m): as_link(v) for m, v in link.items()}
        self._link_names = tuple(self._link)
        self._link_a = tuple(v[0] for v in self._link.values())
        self._link_b = tuple(v[1] for v in self._link.values())
        self._link_c = tuple(v[2] for v in self._link.values())
        self._known = frozenset(quality.labels) | frozenset(self._link)
        self._heads_needed = not set(quality.labels) <= set(self._link)

    @classmethod
    def load(
        cls, models_dir: Path | None = None, chat_route: bool = True, pair_links: bool = False
    ) -> LearnedRouter:
        """``chat_route=False``: every task family on the shared route knobs
        (``[engine] chat_route``); ``pair_links``: see ``read_meta``."""
        d = models_dir or MODELS_DIR
        meta = read_meta(d, chat_route, pair_links)
        return cls(
            SparseModel(d / "router_difficulty.onnx"), SparseModel(d / "router_quality.onnx"), meta
        )

    @property
    def known_models(self) -> frozenset[str]:
        return self._known

    @property
    def route_config(self) -> RouteConfig:
        return self._route

    @property
    def route_stats(self) -> RouteStats:
        return self._stats

    def link(self, model: str) -> Link | None:
        """``model``'s link ``(a, b, c)``; None without one."""
        return self._link.get(model)

    def flat_parts(self) -> FlatRouter | None:
        """What ``engine.signals.fused`` needs to compute ``score`` in one flat step; None when
        some known model has no link (its n-gram head must run)."""
        if self._heads_needed:
            return None
        return FlatRouter(
            self._diff,
            {t: (self._heads[head_for(t)], head_for(t), family_for(t)) for t in TaskType},
            self._route,
            self._stats,
            self._link_names,
            self._link_a,
            self._link_b,
            self._link_c,
        )

    def difficulty(self, req: RequestView, task: TaskType) -> float:
        probs = self._diff.predict(req.features)
        return float(probs[self._heads[head_for(task)]])

    def score(self, req: RequestView, task: TaskType) -> RouterOutput:
        """Difficulty and per-model success: through the model's link to the route score when
        it has one, else its n-gram head."""
        d = self.difficulty(req, task)
        quality: dict[str, float] = {}
        if self._heads_needed:
            probs = self._qual.predict(req.features)
            quality = {m: float(p) for m, p in zip(self._qual.labels, probs, strict=True)}
        if self._link:
            r, lv = self.route_score(req, d, task), difficulty_level(d)
            # = 1 / (1 + exp(-(a + b * r + c * lv))) per linked model, in one C call
            p = links(r, self._link_a, self._link_b, self._link_c, lv)
            quality.update(zip(self._link_names, p, strict=True))
        return RouterOutput(difficulty=d, quality=quality)

    def route_score(self, req: RequestView, difficulty: float, task: TaskType) -> float:
        """Combined strong-vs-weak score (``engine.router.route``): standardized difficulty plus
        the weighted standardized length, with the knobs of the task's route family."""
        length = float(req.features.dense[self._route.length_feature])
        return route_score(
            difficulty, head_for(task), length, self._route, self._stats, family_for(task)
        )

    @staticmethod
    def prior(ability: float, difficulty: float) -> float:
        """Success probability for a model the router has no data for."""
        return prior_quality(ability, difficulty)
