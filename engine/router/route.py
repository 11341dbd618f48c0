"""The combined strong-vs-weak route score, shared by training, evaluation and run time.

    route = (d - mean[head]) / std[head] + length_weight * (x[length_feature] - mean_L) / std_L

``d`` is the difficulty of the prompt's task-family head, ``x`` the featurizer's dense vector
(index 0 = log chars, 1 = log words). The weight, the length feature and the general head's
regularization are chosen by an inner leave-one-benchmark-out over the training benchmarks
(``engine.eval.route_select``); the standardization constants come from the training rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """Knobs of the combined score (chosen by inner LOBO, stored in ``router.json``)."""

    c_general: float = 1.0
    length_feature: int = 0
    length_weight: float = 1.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "c_general": self.c_general,
            "length_feature": self.length_feature,
            "length_weight": self.length_weight,
        }

    @staticmethod
    def from_json(obj: Mapping[str, object]) -> RouteConfig:
        c, f, w = obj.get("c_general", 1.0), obj.get("length_feature", 0), obj.get("length_weight")
        assert isinstance(c, int | float) and isinstance(f, int) and isinstance(w, int | float)
        return RouteConfig(float(c), f, float(w))


@dataclass(frozen=True, slots=True)
class RouteStats:
    """Standardization constants: per difficulty head, and of the chosen length feature."""

    heads: Mapping[str, tuple[float, float]]
    length: tuple[float, float]


def route_score(
    difficulty: float, head: str, length_value: float, cfg: RouteConfig, stats: RouteStats
) -> float:
    mean, std = stats.heads[head]
    lm, ls = stats.length
    return (difficulty - mean) / (std or 1.0) + cfg.length_weight * (length_value - lm) / (
        ls or 1.0
    )
