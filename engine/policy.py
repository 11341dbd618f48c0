"""The routing policy: combines the signals into a choice and builds the fallback chain.

For each model the tier allows, the policy predicts quality ``p`` (the learned router where it
knows the model, else ``prior_quality``: the model's ability prior for the task, moved by
difficulty) and cost (input tokens plus the task's expected output, at list price). Hard constraints exclude a model:
context fit, the latency SLA, the cost budget. The eligible model with the best

    score = sensitivity(task) * p  -  cost_weight(tier) * cost / max_cost(tier)

is chosen: capability-sensitive tasks (code, math) pay for quality, insensitive ones
(summarization, translation) go cheap, and hard prompts raise the gap in ``p`` between models.
The chain continues with the tier's declared fallback order, then the next-best candidates.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import NamedTuple

from engine._policy import candidates as policy_candidates
from engine._policy import finish as policy_finish
from engine.policy_tables import ModelRow, allowed_for, tables_for
from engine.router.prior import difficulty_shift
from modelroute.config import Config, TierConfig
from modelroute.domain import Budget, Candidate, Cascade, DecideInput, Hop, TaskType
from modelroute.errors import BudgetRejected, InvalidInput

# Output tokens a hop must at least be able to produce for the prompt to count as fitting.
MIN_OUTPUT_RESERVE = 16
# The reason of a model the tier (or the request's overrides) does not allow.
NOT_ALLOWED = "not allowed for this tier or request"
# Prefill throughput used to add prompt-processing time to a model's typical TTFT.
PREFILL_TOKENS_PER_S = 8000.0
# A cascade's first hop: the cheapest eligible model whose predicted quality is at least this
# share of the chosen model's, and whose expected cost is at most this share of the chosen one's.
CASCADE_MIN_QUALITY_RATIO = 0.6
CASCADE_MAX_COST_RATIO = 0.5


_CONTEXT_WINDOW = operator.attrgetter("context_window")


class SignalValues(NamedTuple):
    task: TaskType
    task_confidence: float
    difficulty: float
    input_tokens: int
    quality: Mapping[str, float]


class Plan(NamedTuple):
    chain: tuple[Hop, ...]
    budget: Budget
    candidates: tuple[Candidate, ...]
    latency_sla_ms: int
    reason: str
    tier: TierConfig
    cascade: Cascade | None = None


class _Ctx:
    """Per-decision values the candidate checks share."""

    __slots__ = (
        "allowed",
        "cfg",
        "inp",
        "max_cost",
        "sig",
        "sla_ms",
        "tables",
        "task_policy",
        "tier",
        "tier_row",
        "wanted",
    )

    def __init__(self, cfg: Config, inp: DecideInput, sig: SignalValues) -> None:
        tables = tables_for(cfg)
        self.cfg = cfg
        self.tables = tables
        self.inp = inp
        self.sig = sig
        self.tier_row = row = tables.tiers[cfg.tier_for(inp.tier, inp.tenant).name]
        self.tier = tier = row.tier
        ov = inp.overrides
        self.sla_ms = min(tier.latency_sla_ms, ov.latency_sla_ms or tier.latency_sla_ms)
        self.max_cost = min(tier.max_cost_usd, ov.max_cost_usd or tier.max_cost_usd)
        self.allowed = allowed_for(row, ov.allowed_models)
        self.task_policy = tables.tasks[sig.task]
        self.wanted = inp.max_output_tokens or tier.default_max_output_tokens

    def exclusion(self, m: ModelRow, cost: float) -> str:
        tokens = self.sig.input_tokens
        if m.name not in self.allowed:
            return NOT_ALLOWED
        if tokens + MIN_OUTPUT_RESERVE > m.context_window:
            return (
                f"prompt of {tokens} tokens does not fit the context window of {m.context_window}"
            )
        if m.ttft_ms + 1000.0 * tokens / PREFILL_TOKENS_PER_S > self.sla_ms:
            return f"typical time to first token exceeds the {self.sla_ms} ms SLA"
        if m.cost(tokens, MIN_OUTPUT_RESERVE) > self.max_cost:
            return f"prompt alone costs more than the ${self.max_cost:g} budget"
        if cost > self.max_cost:
            return f"expected cost ${cost:.4f} exceeds the ${self.max_cost:g} budget"
        return ""


def _candidates(ctx: _Ctx) -> tuple[list[Candidate], int, bool]:
    """Every configured model with its predicted quality, expected cost and eligibility.

    Per model: output tokens = min(task's expected output, wanted, model max, room left in the
    context window); cost at list price; quality from the router, else the ability prior moved
    by difficulty; eligible when allowed, the prompt fits, typical TTFT plus prefill meets the
    SLA and both the prompt alone and the expected cost fit the budget; score =
    sensitivity * quality - cost_weight * cost / max_cost. The loop runs in C
    (``engine._policy``), with the Python-side reason for each excluded model. Returns the
    candidates, how many are eligible and whether the SLA excluded any."""
    sig = ctx.sig
    quality = sig.quality if isinstance(sig.quality, dict) else dict(sig.quality)
    tokens = sig.input_tokens
    params = (
        tokens,
        min(ctx.task_policy.expected_output_tokens, ctx.wanted),
        float(ctx.sla_ms),
        ctx.max_cost,
        ctx.tier.cost_weight / ctx.max_cost,
        ctx.task_policy.sensitivity,
        difficulty_shift(sig.difficulty),
        MIN_OUTPUT_RESERVE,
        1000.0 * tokens / PREFILL_TOKENS_PER_S,
    )
    rows = ctx.tables.models
    out, pending, n_eligible = policy_candidates(
        Candidate, rows, ctx.tables.prior_logits[sig.task], quality, ctx.allowed, params
    )
    sla_excluded = False
    for i in pending:
        c = out[i]
        reason = ctx.exclusion(rows[i], c.estimated_cost_usd)
        sla_excluded = sla_excluded or "SLA" in reason
        out[i] = c._replace(excluded_reason=reason)
    return out, n_eligible, sla_excluded


def _no_candidate(ctx: _Ctx, cands: list[Candidate]) -> Exception:
    allowed = [c for c in cands if c.model.name in ctx.allowed]
    tokens = ctx.sig.input_tokens
    if all("context window" in c.excluded_reason for c in allowed):
        biggest = (
            max(ctx.tables.by_name[c.model.name].context_window for c in allowed) if allowed else 0
        )
        return InvalidInput(
            "messages",
            f"prompt of {tokens} tokens is larger than the context window of every allowed model "
            f"(largest: {biggest})",
        )
    if all("budget" in c.excluded_reason or "context" in c.excluded_reason for c in allowed):
        return BudgetRejected(
            f"no allowed model can answer within the ${ctx.max_cost:g} cost budget"
        )
    return InvalidInput("overrides", "no allowed model meets the request's constraints")


def _relax_sla(ctx: _Ctx, cands: list[Candidate]) -> list[Candidate]:
    """When the SLA excludes every model, keep the fastest otherwise-eligible one (said in the reason)."""
    slow = [c for c in cands if "SLA" in c.excluded_reason]
    if not slow:
        return cands
    by_name = ctx.tables.by_name
    fastest = min(slow, key=lambda c: by_name[c.model.name].ttft_ms)
    q = fastest.predicted_quality
    score = (
        ctx.task_policy.sensitivity * q
        - ctx.tier.cost_weight * fastest.estimated_cost_usd / ctx.max_cost
    )
    relaxed = Candidate(fastest.model, fastest.estimated_cost_usd, q, score, True, "")
    return [relaxed if c is fastest else c for c in cands]


def _hops(ctx: _Ctx, rows: list[ModelRow]) -> tuple[Hop, ...]:
    """One hop per model row: its output cap (the wanted tokens, within the model's maximum,
    the room left in its context window and what the remaining cost budget buys, never below
    ``MIN_OUTPUT_RESERVE`` when priced) and its expected cost."""
    tokens = ctx.sig.input_tokens
    wanted = ctx.wanted
    max_cost = ctx.max_cost
    expected = ctx.task_policy.expected_output_tokens
    actions = ctx.cfg.error_actions
    out_hops = []
    for index, m in enumerate(rows):
        out = wanted if wanted < m.max_output_tokens else m.max_output_tokens
        room = m.context_window - tokens
        if room < out:
            out = room if room > 0 else 0
        price = m.output_price
        if price > 0:
            affordable = int((max_cost - m.cost(tokens, 0)) * 1e6 / price)
            out = max(MIN_OUTPUT_RESERVE, out if out < affordable else affordable)
        cost = m.cost(tokens, out if out < expected else expected)
        out_hops.append(
            Hop(
                index,
                m.ref,
                actions,
                out,
                cost,
                m.context_window,
                m.ttft_ms,
                m.supports_continuation,
            )
        )
    return tuple(out_hops)


def _chain(
    ctx: _Ctx, chosen: Candidate, eligible: list[Candidate], first: Candidate | None = None
) -> tuple[Hop, ...]:
    """The chosen model (after the cascade's first hop, if any), the tier's declared fallback
    order, then the other eligible models by score; at most the tier's ``max_hops``."""
    names = {first.model.name: None} if first is not None else {}
    names[chosen.model.name] = None
    max_hops = ctx.tier.max_hops
    if len(names) < max_hops:
        ok = {c.model.name for c in eligible}
        for n in ctx.tier_row.declared:
            if n in ok:
                names[n] = None
        if len(names) < max_hops:
            for c in sorted(eligible, key=lambda c: -c.score):
                names[c.model.name] = None
    by_name = ctx.tables.by_name
    return _hops(ctx, [by_name[n] for n in list(names)[:max_hops]])


def _reason(
    ctx: _Ctx, chosen: Candidate, cands: list[Candidate], hops: int, sla_excluded: bool
) -> str:
    """The short human reason; it names the SLA when the SLA excluded a model (also when that
    model was then kept as the fastest, see ``_relax_sla``)."""
    sig = ctx.sig
    runner = max(
        (c for c in cands if c.eligible and c is not chosen), key=lambda c: c.score, default=None
    )
    text = (
        f"task={sig.task.label}({sig.task_confidence:.2f}) difficulty={sig.difficulty:.2f} "
        f"tokens={sig.input_tokens} tier={ctx.tier.name}: {chosen.model.name} "
        f"(p={chosen.predicted_quality:.2f}, ${chosen.estimated_cost_usd:.4f})"
    )
    if runner is not None:
        text += f" over {runner.model.name} (p={runner.predicted_quality:.2f}, ${runner.estimated_cost_usd:.4f})"
    if sla_excluded and chosen.excluded_reason == "":
        text += f"; SLA {ctx.sla_ms} ms"
    return text + f"; {hops} hop{'s' if hops != 1 else ''}"


def _cascade_first(ctx: _Ctx, chosen: Candidate, eligible: list[Candidate]) -> Candidate | None:
    """The cheap model a cascade would try first, when the task and tier allow one."""
    if not (ctx.task_policy.cascade and ctx.tier.cascade) or ctx.tier.max_hops < 2:
        return None
    within = [
        c
        for c in eligible
        if c.predicted_quality >= CASCADE_MIN_QUALITY_RATIO * chosen.predicted_quality
        and c.estimated_cost_usd <= CASCADE_MAX_COST_RATIO * chosen.estimated_cost_usd
        and c.estimated_cost_usd + chosen.estimated_cost_usd <= ctx.max_cost
    ]
    if not within:
        return None
    return min(within, key=lambda c: (c.estimated_cost_usd, -c.predicted_quality))


def _cascade_threshold(ctx: _Ctx) -> tuple[float, str]:
    from engine.verifier import calibrated_thresholds

    name, thresholds = calibrated_thresholds()
    configured = ctx.task_policy.escalate_below
    if configured is not None:
        return configured, name
    task = ctx.sig.task.label
    return thresholds.get(task, thresholds.get("general", 0.5)), name


def plan(cfg: Config, inp: DecideInput, sig: SignalValues) -> Plan:
    """Choose the model and build the plan; raises InvalidInput or BudgetRejected.

    Without a cascade the choice, chain, hops and reason are built in C (``engine._policy.finish``,
    the same steps as ``_finish_python``; ``tests/unit/test_policy_kernel.py`` holds them equal)."""
    ctx = _Ctx(cfg, inp, sig)
    cands, sla_excluded = _eligible_candidates(ctx)
    tier = ctx.tier
    if ctx.task_policy.cascade and tier.cascade and tier.max_hops >= 2:
        return _finish_python(ctx, cands, sla_excluded)
    _, chain, reason = policy_finish(
        Hop,
        cands,
        ctx.tables.models,
        ctx.tier_row.declared_idx,
        tier.max_hops,
        (
            sig.input_tokens,
            ctx.wanted,
            ctx.max_cost,
            ctx.task_policy.expected_output_tokens,
            MIN_OUTPUT_RESERVE,
        ),
        cfg.error_actions,
        (sig.task.label, sig.task_confidence, sig.difficulty, tier.name, ctx.sla_ms, sla_excluded),
    )
    return _assemble(ctx, cands, chain, reason, None)


def plan_reference(cfg: Config, inp: DecideInput, sig: SignalValues) -> Plan:
    """``plan`` with every step in Python (the definition the C steps are tested against)."""
    ctx = _Ctx(cfg, inp, sig)
    return _finish_python(ctx, *_eligible_candidates(ctx))


def _eligible_candidates(ctx: _Ctx) -> tuple[list[Candidate], bool]:
    """Every model's candidate, at least one of them eligible (else the error to raise), and
    whether the SLA excluded any."""
    cands, n_eligible, sla_excluded = _candidates(ctx)
    if not n_eligible:
        cands = _relax_sla(ctx, cands)
        if not any(c.eligible for c in cands):
            raise _no_candidate(ctx, cands)
    return cands, sla_excluded


def _finish_python(ctx: _Ctx, cands: list[Candidate], sla_excluded: bool) -> Plan:
    eligible = [c for c in cands if c.eligible]
    chosen = max(eligible, key=lambda c: c.score)
    first = _cascade_first(ctx, chosen, eligible)
    chain = _chain(ctx, chosen, eligible, first)
    cascade = None
    reason = _reason(ctx, chosen, cands, len(chain), sla_excluded)
    if first is not None:
        below, verifier = _cascade_threshold(ctx)
        cascade = Cascade(first_hop=0, escalate_below=below, verifier=verifier)
        reason += (
            f"; cascade: {first.model.name} (p={first.predicted_quality:.2f}, "
            f"${first.estimated_cost_usd:.4f}) first, {chosen.model.name} when the verifier's "
            f"confidence is below {below:.2f}"
        )
    return _assemble(ctx, cands, chain, reason, cascade)


def _assemble(
    ctx: _Ctx,
    cands: list[Candidate],
    chain: tuple[Hop, ...],
    reason: str,
    cascade: Cascade | None,
) -> Plan:
    head = chain[0]
    budget = Budget(
        max_input_tokens=max(map(_CONTEXT_WINDOW, chain)) - MIN_OUTPUT_RESERVE,
        max_output_tokens=head.max_output_tokens,
        max_cost_usd=ctx.max_cost,
        ttft_deadline_ms=ctx.sla_ms,
        total_deadline_ms=ctx.tier.total_deadline_ms,
    )
    return Plan(chain, budget, tuple(cands), ctx.sla_ms, reason, ctx.tier, cascade)
