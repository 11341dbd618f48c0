"""The router interface: one method, "score this request"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

from engine.signals.base import RequestView
from modelroute.domain import TaskType


class RouterOutput(NamedTuple):
    """``difficulty`` in [0, 1] (1 = hard); ``quality`` maps a model's router key to the
    predicted probability that its answer is acceptable (only models the router knows)."""

    difficulty: float
    quality: Mapping[str, float]


class Router(Protocol):
    """Scores a request for the models it knows; must be fast (the Decide fast path)."""

    @property
    def known_models(self) -> frozenset[str]: ...

    def score(self, req: RequestView, task: TaskType) -> RouterOutput: ...
