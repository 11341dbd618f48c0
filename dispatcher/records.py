"""Ledger rows for one finished request: one request row and one row per attempt."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from dispatcher.events import Completed, Failed
from dispatcher.ledger.rows import AttemptRow, RequestRow

if TYPE_CHECKING:
    from dispatcher.attempt import Attempt
    from dispatcher.run import Run


def _ms(start: float, end: float | None) -> int:
    return max(0, int(((end if end is not None else start) - start) * 1000))


def attempt_row(request_id: str, a: Attempt) -> AttemptRow:
    return AttemptRow(
        request_id=request_id,
        attempt=a.number,
        hop=a.hop.index,
        provider=a.model.provider,
        model=a.model.name,
        outcome=a.outcome or "cancelled",
        error_class=a.error_class.label if a.error_class is not None else "",
        input_tokens=a.billed_input_tokens,
        output_tokens=a.output_tokens if a.charged else 0,
        cost_usd=a.cost_usd,
        ttft_ms=_ms(a.started_at, a.first_text_at) if a.first_text_at is not None else None,
        duration_ms=_ms(a.started_at, a.ended_at),
        hedge=a.hedge,
        started_at_ms=a.started_at_ms,
    )


def signals_json(run: Run) -> str:
    s = run.plan.signals
    return json.dumps(
        {
            "task": s.task.label,
            "task_confidence": round(s.task_confidence, 4),
            "task_from_hint": s.task_from_hint,
            "difficulty": round(s.difficulty, 4),
            "input_tokens": s.input_tokens,
            "latency_sla_ms": s.latency_sla_ms,
            "candidates": [
                [str(c.model), round(c.score, 4), c.eligible, c.excluded_reason]
                for c in s.candidates
            ],
        },
        separators=(",", ":"),
    )


def rows(run: Run, terminal: Completed | Failed) -> tuple[RequestRow, list[AttemptRow]]:
    plan = run.plan
    now = run.ex.clock()
    usage = run.usage()
    last = run.winner or (run.attempts[-1] if run.attempts else None)
    completed = isinstance(terminal, Completed)
    request = RequestRow(
        request_id=run.request_id,
        decision_id=plan.decision_id,
        tenant=run.tenant,
        tier=plan.tier,
        policy_version=plan.policy_version,
        policy_hash=plan.policy_hash,
        task=plan.signals.task.label,
        difficulty=plan.signals.difficulty,
        decision_time_us=plan.decision_time_us,
        signals_json=signals_json(run),
        chosen_model=plan.chain[0].model.name,
        final_model=last.model.name if last is not None else "",
        outcome="completed" if completed else "failed",
        error_class="" if isinstance(terminal, Completed) else terminal.error_class.label,
        attempts=len(run.attempts),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        ttft_ms=_ms(run.started_at, run.first_delivery_at)
        if run.first_delivery_at is not None
        else None,
        duration_ms=_ms(run.started_at, now),
        escalated=last is not None and last.hop.index != plan.chain[0].index,
        hedged=any(a.hedge for a in run.attempts),
        partial=not completed and bool(run.sent),
        started_at_ms=run.started_at_ms,
        finished_at_ms=run.started_at_ms + _ms(run.started_at, now),
    )
    return request, [attempt_row(run.request_id, a) for a in run.attempts]
