"""The combined strong-vs-weak route score, shared by training, evaluation and run time.

    route = (d - mean[head]) / std[head] + length_weight * (x[length_feature] - mean_L) / std_L

``d`` is the difficulty of the prompt's task-family head, ``x`` the featurizer's dense vector
(index 0 = log chars, 1 = log words). A route *family* may carry its own knobs
(``RouteConfig.families``): ``route = a_f * (d - mean[head]) / std[head] + w_f * (x - mean_L) /
std_L``; the ``chat`` family (tasks judged by preference, ``engine.router.prior.family_for``)
reads the general head with the weights chosen on preference data (``engine.eval.chat``). The weight, the length feature and the general head's
regularization are chosen by an inner leave-one-benchmark-out over the training benchmarks
(``engine.eval.route_select``); the standardization constants come from the training rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """Knobs of the combined score (chosen by inner LOBO, stored in ``router.json``)."""

    c_general: float = 1.0
    length_feature: int = 0
    length_weight: float = 1.0
    # (family, difficulty weight, length weight) for families with their own knobs
    families: tuple[tuple[str, float, float], ...] = ()

    def weights(self, family: str | None) -> tuple[float, float]:
        """The difficulty and length weights of a route family (the shared ones by default)."""
        for name, dw, lw in self.families:
            if name == family:
                return dw, lw
        return 1.0, self.length_weight

    def with_family(
        self, family: str, difficulty_weight: float, length_weight: float
    ) -> RouteConfig:
        rest = tuple(f for f in self.families if f[0] != family)
        return replace(self, families=(*rest, (family, difficulty_weight, length_weight)))

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "c_general": self.c_general,
            "length_feature": self.length_feature,
            "length_weight": self.length_weight,
        }
        if self.families:
            out["families"] = {
                name: {"difficulty_weight": dw, "length_weight": lw}
                for name, dw, lw in self.families
            }
        return out

    @staticmethod
    def from_json(obj: Mapping[str, object]) -> RouteConfig:
        c, f, w = obj.get("c_general", 1.0), obj.get("length_feature", 0), obj.get("length_weight")
        assert isinstance(c, int | float) and isinstance(f, int) and isinstance(w, int | float)
        fams = obj.get("families", {})
        assert isinstance(fams, Mapping)
        parsed = []
        for name, knobs in fams.items():
            assert isinstance(knobs, Mapping)
            dw, lw = knobs["difficulty_weight"], knobs["length_weight"]
            assert isinstance(dw, int | float) and isinstance(lw, int | float)
            parsed.append((str(name), float(dw), float(lw)))
        return RouteConfig(float(c), f, float(w), tuple(parsed))


@dataclass(frozen=True, slots=True)
class RouteStats:
    """Standardization constants: per difficulty head, and of the chosen length feature."""

    heads: Mapping[str, tuple[float, float]]
    length: tuple[float, float]


def route_score(
    difficulty: float,
    head: str,
    length_value: float,
    cfg: RouteConfig,
    stats: RouteStats,
    family: str | None = None,
) -> float:
    """The route score of a prompt whose difficulty comes from ``head``; ``family`` (default:
    the head's own) picks the weights."""
    mean, std = stats.heads[head]
    lm, ls = stats.length
    dw, lw = cfg.weights(head if family is None else family)
    return dw * (difficulty - mean) / (std or 1.0) + lw * (length_value - lm) / (ls or 1.0)
