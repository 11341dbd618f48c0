"""Per-policy constants the policy reads on every decision, computed once per ``Config``.

The policy runs per request over every configured model; reading the same attributes through
nested frozen config objects and recomputing per-tier sets would cost more than the arithmetic
itself. A ``Tables`` holds, per model, the flat values the policy needs, and per tier its allowed
set and declared fallback order. Built lazily for each ``Config`` object and kept while it lives.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import NamedTuple

from engine.router.prior import prior_logit
from modelroute.config import Config, TaskPolicy, TierConfig
from modelroute.domain import ModelRef, TaskType


class ModelRow(NamedTuple):
    """One model's values, as plain attributes (prices are USD per 1M tokens)."""

    name: str
    ref: ModelRef
    router_key: str
    input_price: float
    output_price: float
    context_window: int
    max_output_tokens: int
    ttft_ms: int
    ability: Mapping[TaskType, float]
    supports_continuation: bool

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Same arithmetic as ``ModelConfig.cost_usd``."""
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1e6


class TierRow(NamedTuple):
    tier: TierConfig
    allowed: frozenset[str]
    declared: tuple[str, ...]
    declared_idx: tuple[int, ...]  # the declared models' indexes in ``Tables.models``


class Tables:
    """Flat per-model and per-tier rows of one ``Config``."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.models: tuple[ModelRow, ...] = tuple(
            ModelRow(
                name=m.name,
                ref=m.ref,
                router_key=m.router_key,
                input_price=m.input_usd_per_mtok,
                output_price=m.output_usd_per_mtok,
                context_window=m.context_window,
                max_output_tokens=m.max_output_tokens,
                ttft_ms=m.ttft_ms,
                ability=m.ability,
                supports_continuation=cfg.providers[m.provider].supports_continuation,
            )
            for m in cfg.models.values()
        )
        self.by_name: dict[str, ModelRow] = {r.name: r for r in self.models}
        index = {r.name: i for i, r in enumerate(self.models)}
        self.tiers: dict[str, TierRow] = {}
        for name, t in cfg.tiers.items():
            declared = cfg.chains[t.chain].models if t.chain else ()
            self.tiers[name] = TierRow(
                t,
                frozenset(t.allowed_models or cfg.models),
                declared,
                tuple(index[n] for n in declared),
            )
        self.tasks: Mapping[TaskType, TaskPolicy] = cfg.tasks
        # Per task, each model's prior in logit space (``engine.router.prior``), in model order.
        self.prior_logits: dict[TaskType, tuple[float, ...]] = {
            t: tuple(prior_logit(r.ability[t]) for r in self.models) for t in TaskType
        }


_LOCK = threading.Lock()
_CACHE: dict[int, Tables] = {}


def allowed_for(row: TierRow, requested: tuple[str, ...]) -> frozenset[str]:
    """The models a decision may use: the tier's, narrowed to a request's ``allowed_models``."""
    return row.allowed & frozenset(requested) if requested else row.allowed


def tables_for(cfg: Config) -> Tables:
    """The tables of ``cfg`` (built on first use; keyed by identity, the config is frozen)."""
    t = _CACHE.get(id(cfg))
    if t is not None and t.cfg is cfg:
        return t
    with _LOCK:
        if len(_CACHE) > 64:  # configs replaced at run time: keep the cache bounded
            _CACHE.clear()
        t = Tables(cfg)
        _CACHE[id(cfg)] = t
        return t
