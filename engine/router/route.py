"""The combined strong-vs-weak route score, shared by training, evaluation and run time.

    route = (d - mean[head]) / std[head] + length_weight * (x[length_feature] - mean_L) / std_L

``d`` is the difficulty of the prompt's task-family head, ``x`` the featurizer's dense vector
(index 0 = log chars, 1 = log words). A route *family* may carry its own knobs
(``RouteConfig.families``): ``route = a_f * (d - mean[head]) / std[head] + w_f * (x - mean_L) /
std_L + offset_f`` (the length term clipped to the range the knobs were fitted on); the ``chat``
family (tasks judged by preference, ``engine.router.prior.family_for``) reads the general head
with the knobs chosen on preference data (``engine.eval.chat``). The weight, the length feature
and the general head's regularization are chosen by an inner leave-one-benchmark-out over the
training benchmarks (``engine.eval.route_select``); the standardization constants come from the
training rows.

A model's success link reads the route score and, for the models fitted on multi-model rows, the
difficulty's level (``difficulty_level``): ``p = sigmoid(a + b * route + c * level)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class FamilyKnobs:
    """A route family's own knobs: ``a * z(d) + w * clip(z(x), low, high) + offset``."""

    difficulty_weight: float = 1.0
    length_weight: float = 0.0
    offset: float = 0.0
    length_low: float = -math.inf  # z(length) is clipped to the range the knobs were fitted on
    length_high: float = math.inf

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "difficulty_weight": self.difficulty_weight,
            "length_weight": self.length_weight,
            "offset": self.offset,
        }
        if math.isfinite(self.length_low) and math.isfinite(self.length_high):
            out["length_range"] = [self.length_low, self.length_high]
        return out

    @staticmethod
    def from_json(obj: Mapping[str, object]) -> FamilyKnobs:
        vals = [obj.get(k, d) for k, d in (("difficulty_weight", 1.0), ("length_weight", 0.0),
                                           ("offset", 0.0))]  # fmt: skip
        rng = obj.get("length_range", [-math.inf, math.inf])
        assert isinstance(rng, list) and len(rng) == 2
        vals += rng
        if not all(isinstance(v, int | float) for v in vals):
            raise ValueError(f"route family knobs must be numbers: {obj}")
        a, w, off, lo, hi = (float(v) for v in vals)  # type: ignore[arg-type]
        return FamilyKnobs(a, w, off, lo, hi)


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """Knobs of the combined score (chosen by inner LOBO, stored in ``router.json``)."""

    c_general: float = 1.0
    length_feature: int = 0
    length_weight: float = 1.0
    families: tuple[tuple[str, FamilyKnobs], ...] = ()  # families with their own knobs
    _shared: FamilyKnobs = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # built once: route_score asks for a family's knobs on every Python-path decision
        object.__setattr__(self, "_shared", FamilyKnobs(1.0, self.length_weight))

    def knobs(self, family: str | None) -> FamilyKnobs:
        """A route family's knobs (the shared weights by default)."""
        for name, k in self.families:
            if name == family:
                return k
        return self._shared

    def with_family(self, family: str, knobs: FamilyKnobs) -> RouteConfig:
        rest = tuple(f for f in self.families if f[0] != family)
        return replace(self, families=(*rest, (family, knobs)))

    def shared(self) -> RouteConfig:
        """These knobs without any family's own."""
        return replace(self, families=())

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "c_general": self.c_general,
            "length_feature": self.length_feature,
            "length_weight": self.length_weight,
        }
        if self.families:
            out["families"] = {name: k.to_json() for name, k in self.families}
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
            parsed.append((str(name), FamilyKnobs.from_json(knobs)))
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
    the head's own) picks the knobs."""
    mean, std = stats.heads[head]
    lm, ls = stats.length
    k = cfg.knobs(head if family is None else family)
    zl = min(max((length_value - lm) / (ls or 1.0), k.length_low), k.length_high)
    return (
        k.difficulty_weight * (difficulty - mean) / (std or 1.0) + k.length_weight * zl + k.offset
    )


LEVEL_CLIP = 1e-4  # the difficulty is clipped to [LEVEL_CLIP, 1 - LEVEL_CLIP] before its logit


def difficulty_level(difficulty: float) -> float:
    """The difficulty's log-odds, unstandardized: where the prompt sits on the 7B models' scale
    *across* task families and benchmarks (the route score, standardized per head, ranks prompts
    within one). Multi-model links read it (``p = sigmoid(a + b * route + c * level)``); the C
    fast path computes the same expression (``level_of`` in ``_heads_core.h``)."""
    d = min(max(difficulty, LEVEL_CLIP), 1.0 - LEVEL_CLIP)
    return math.log(d / (1.0 - d))


Link = tuple[float, float, float]  # p = sigmoid(a + b * route + c * level)


def as_link(values: Sequence[float]) -> Link:
    """A ``router.json`` link: ``[a, b, c]``, or ``[a, b]`` (a file written before the level
    term: ``c = 0``)."""
    if len(values) not in (2, 3):
        raise ValueError(f"a link is [a, b] or [a, b, c], got {list(values)}")
    a, b, *c = (float(v) for v in values)
    return (a, b, c[0] if c else 0.0)
