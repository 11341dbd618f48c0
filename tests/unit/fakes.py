"""Deterministic stand-ins for the learned signals, for policy and engine tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.router.base import RouterOutput
from engine.signals.base import RequestView
from modelroute.domain import TaskType


@dataclass(frozen=True)
class FixedTask:
    task: TaskType
    confidence: float = 0.9


@dataclass
class FakeTaskSignal:
    result: FixedTask
    name: str = "task"
    calls: int = 0

    def read(self, req: RequestView) -> FixedTask:
        self.calls += 1
        return self.result


@dataclass
class FakeRouter:
    difficulty: float = 0.5
    quality: Mapping[str, float] = field(default_factory=dict)

    @property
    def known_models(self) -> frozenset[str]:
        return frozenset(self.quality)

    def score(self, req: RequestView, task: TaskType) -> RouterOutput:
        return RouterOutput(self.difficulty, self.quality)


@dataclass
class FakeSlowRouter:
    """A slow-path router that judges every task but math, with its own difficulty."""

    difficulty: float = 0.9
    quality: Mapping[str, float] = field(default_factory=dict)
    calls: int = 0
    pairs: list[bool] = field(default_factory=list)  # per call: on the pair's links

    def is_slow(self, task: TaskType) -> bool:
        return task != TaskType.MATH

    def score_batch(
        self, reqs: Sequence[RequestView], tasks: Sequence[TaskType], pair: bool = False
    ) -> list[RouterOutput]:
        self.calls += 1
        self.pairs.append(pair)
        return [RouterOutput(self.difficulty, self.quality) for _ in reqs]
