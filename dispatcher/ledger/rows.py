"""Ledger rows: one per request and one per attempt (a hop, a retry or a hedge).

These are the only types the ledger stores; the dispatcher builds them when a request ends and
hands them to a ``LedgerStore``.
"""

from __future__ import annotations

from dataclasses import dataclass

REQUEST_OUTCOMES = ("completed", "failed")
ATTEMPT_OUTCOMES = ("ok", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One row per ``Execute`` call, written once when the request ends."""

    request_id: str
    decision_id: str
    tenant: str
    tier: str
    policy_version: str
    policy_hash: str
    task: str
    difficulty: float
    decision_time_us: int  # the engine's own decision time: the router's overhead
    signals_json: str
    chosen_model: str  # the plan's first hop
    final_model: str  # the model that produced the answer (or failed last)
    outcome: str  # "completed" | "failed"
    error_class: str  # "" when completed
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    ttft_ms: int | None  # None when no token ever reached the client
    duration_ms: int
    escalated: bool  # served by a later hop than the first
    hedged: bool  # a hedge attempt was started
    partial: bool  # a failed request whose client had already received text
    started_at_ms: int  # unix epoch milliseconds
    finished_at_ms: int


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One row per attempt against a provider endpoint."""

    request_id: str
    attempt: int  # 1-based order in which attempts were started
    hop: int  # 0-based index in the plan's chain
    provider: str
    model: str
    outcome: str  # "ok" | "failed" | "cancelled" | "escalated" (a cascade's rejected answer)
    error_class: str  # "" when ok
    input_tokens: int
    output_tokens: int
    cost_usd: float
    ttft_ms: int | None
    duration_ms: int
    hedge: bool
    started_at_ms: int
