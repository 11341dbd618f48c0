"""Plain typed domain objects shared by the engine and the dispatcher.

Wire types (protobuf) stop at the servicers; everything behind them takes and returns these.
Enum values mirror the proto enums of the same name (same numbers), so conversion is by value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple


class Role(enum.IntEnum):
    SYSTEM = 1
    USER = 2
    ASSISTANT = 3
    TOOL = 4


class TaskType(enum.IntEnum):
    CODE = 1
    MATH = 2
    REASONING = 3
    EXTRACTION = 4
    SUMMARIZATION = 5
    TRANSLATION = 6
    CLASSIFICATION = 7
    CREATIVE_WRITING = 8
    OPEN_QA = 9

    @property
    def label(self) -> str:
        """The lower-case name used in config files and reports (e.g. ``creative_writing``)."""
        return _TASK_LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> TaskType:
        try:
            return cls[label.upper()]
        except KeyError:
            known = ", ".join(t.label for t in cls)
            raise ValueError(f"unknown task type {label!r} (known: {known})") from None


# Read on every decision: a table is cheaper than the enum's name property.
_TASK_LABELS: dict[TaskType, str] = {t: t.name.lower() for t in TaskType}


class ErrorClass(enum.IntEnum):
    INVALID_REQUEST = 1
    CONTEXT_OVERFLOW = 2
    AUTH = 3
    RATE_LIMITED = 4
    OVERLOADED = 5
    TIMEOUT = 6
    INTERNAL = 7
    CONTENT_POLICY = 8
    BUDGET_EXCEEDED = 9
    KILLED = 10
    DEADLINE_EXCEEDED = 11
    CANCELLED = 12
    NO_HOP_AVAILABLE = 13

    @property
    def label(self) -> str:
        return self.name.lower()


class Action(enum.IntEnum):
    RETRY = 1
    FAIL_OVER = 2
    FAIL_OVER_LONGER_CONTEXT = 3
    STOP = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class StreamingMode(enum.IntEnum):
    FAIL = 1
    RESTART = 2
    CONTINUE = 3
    BUFFER = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ModelRef:
    provider: str
    name: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.name}"


@dataclass(frozen=True, slots=True)
class Overrides:
    latency_sla_ms: int | None = None
    max_cost_usd: float | None = None
    allowed_models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DecideInput:
    """What the engine decides on: the request as plain data."""

    messages: tuple[Message, ...]
    request_id: str = ""
    tenant: str = ""
    tier: str = ""
    task_hint: TaskType | None = None
    max_output_tokens: int | None = None
    overrides: Overrides = field(default_factory=Overrides)
    metadata: dict[str, str] = field(default_factory=dict)


class Budget(NamedTuple):
    max_input_tokens: int
    max_output_tokens: int
    max_cost_usd: float
    ttft_deadline_ms: int
    total_deadline_ms: int


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    error_class: ErrorClass
    action: Action
    max_retries: int = 0


@dataclass(frozen=True, slots=True)
class Hop:
    index: int
    model: ModelRef
    on_error: tuple[ErrorPolicy, ...]
    max_output_tokens: int
    estimated_cost_usd: float
    context_window: int
    typical_ttft_ms: int
    supports_continuation: bool

    def policy_for(self, error_class: ErrorClass) -> ErrorPolicy | None:
        for p in self.on_error:
            if p.error_class == error_class:
                return p
        return None


class Candidate(NamedTuple):
    """A candidate model as the policy saw it (a NamedTuple: immutable and cheap to build, and
    every decision builds one per configured model)."""

    model: ModelRef
    estimated_cost_usd: float
    predicted_quality: float
    score: float
    eligible: bool
    excluded_reason: str = ""


@dataclass(frozen=True, slots=True)
class Signals:
    task: TaskType
    task_confidence: float
    difficulty: float
    input_tokens: int
    tier: str
    tenant: str
    latency_sla_ms: int
    candidates: tuple[Candidate, ...]
    task_from_hint: bool = False


@dataclass(frozen=True, slots=True)
class Cascade:
    """Confidence escalation: hop ``first_hop`` answers first with its output held back; the
    next hop runs only when the verifier's confidence in that answer is below ``escalate_below``."""

    first_hop: int
    escalate_below: float
    verifier: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    request_id: str
    policy_version: str
    policy_hash: str
    model: ModelRef
    budget: Budget
    chain: tuple[Hop, ...]
    signals: Signals
    reason: str
    decision_time_us: int
    streaming_mode: StreamingMode
    tenant: str
    tier: str
    cascade: Cascade | None = None
