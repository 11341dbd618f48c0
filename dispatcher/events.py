"""Domain events of one Execute stream (they mirror ``ExecuteEvent`` in dispatcher.proto).

Every stream is: one ``DecisionEvent``, then attempt/delta/usage/reset events, then exactly one
terminal event, ``Completed`` or ``Failed``. The servicer numbers them and converts them to wire.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from modelroute.domain import Action, Decision, ErrorClass, ModelRef


class FinishReason(enum.IntEnum):
    STOP = 1
    LENGTH = 2
    CONTENT_FILTER = 3
    # Output was cut at the cost budget (buffering tiers truncate instead of failing).
    BUDGET = 4

    @classmethod
    def from_provider(cls, reason: str) -> FinishReason:
        return {"length": cls.LENGTH, "content_filter": cls.CONTENT_FILTER}.get(reason, cls.STOP)


@dataclass(frozen=True, slots=True)
class Usage:
    """Running totals over all attempts of one request."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    plan: Decision


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    attempt: int
    hop: int
    model: ModelRef
    hedge: bool = False


@dataclass(frozen=True, slots=True)
class Delta:
    text: str
    attempt: int


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    attempt: int
    hop: int
    model: ModelRef
    error_class: ErrorClass
    message: str
    next: Action
    retry_after_ms: int = 0


@dataclass(frozen=True, slots=True)
class Reset:
    reason: str
    discarded_chars: int


@dataclass(frozen=True, slots=True)
class UsageEvent:
    usage: Usage


@dataclass(frozen=True, slots=True)
class Escalated:
    """A cascade's held-back answer scored below the threshold: discarded, the next hop runs."""

    attempt: int
    hop: int
    model: ModelRef
    confidence: float
    threshold: float


@dataclass(frozen=True, slots=True)
class Completed:
    finish_reason: FinishReason
    model: ModelRef
    attempts: int
    usage: Usage
    ttft_ms: int
    duration_ms: int
    escalated: bool
    hedged: bool


@dataclass(frozen=True, slots=True)
class Failed:
    error_class: ErrorClass
    message: str
    partial: bool
    attempts: int
    usage: Usage


Event = (
    DecisionEvent
    | AttemptStarted
    | Delta
    | AttemptFailed
    | Reset
    | UsageEvent
    | Escalated
    | Completed
    | Failed
)
TERMINAL = (Completed, Failed)
