"""Conversion between protobuf wire types and domain objects: used only by servicers and clients.

Enum values share numbers with the proto enums, so conversion is by value; a proto value of 0
(UNSPECIFIED) means "absent" and maps to None where the domain allows it.
"""

from __future__ import annotations

import functools

from modelroute.domain import (
    Action,
    Budget,
    Candidate,
    Cascade,
    DecideInput,
    Decision,
    ErrorClass,
    ErrorPolicy,
    Hop,
    Message,
    ModelRef,
    Overrides,
    Role,
    Signals,
    StreamingMode,
    TaskType,
)
from modelroute.errors import InvalidInput
from modelroute.v1 import common_pb2, engine_pb2

_ROLES = {int(r): r for r in Role}
_TASKS = {int(t): t for t in TaskType}
_NO_OVERRIDES = Overrides()


def decide_input_from_pb(req: engine_pb2.DecideRequest) -> DecideInput:
    """The request as plain data; enum values are checked, the rest is validated by the engine."""
    messages = []
    roles = _ROLES
    for i, m in enumerate(req.messages):
        role = roles.get(m.role)
        if role is None:
            if m.role == common_pb2.ROLE_UNSPECIFIED:
                raise InvalidInput(
                    f"messages[{i}].role", "must be set (system, user, assistant or tool)"
                )
            raise InvalidInput(f"messages[{i}].role", f"unknown enum value {m.role}")
        messages.append(Message(role, m.content, m.name if m.HasField("name") else None))
    task_hint = None
    if req.task_hint != common_pb2.TASK_TYPE_UNSPECIFIED:
        task_hint = _TASKS.get(req.task_hint)
        if task_hint is None:
            raise InvalidInput("task_hint", f"unknown enum value {req.task_hint}")
    overrides = overrides_from_pb(req.overrides) if req.HasField("overrides") else _NO_OVERRIDES
    return DecideInput(
        messages=tuple(messages),
        request_id=req.request_id,
        tenant=req.tenant,
        tier=req.tier,
        task_hint=task_hint,
        max_output_tokens=req.max_output_tokens if req.HasField("max_output_tokens") else None,
        overrides=overrides,
        metadata=dict(req.metadata) if req.metadata else {},
    )


def overrides_from_pb(ov: engine_pb2.Overrides) -> Overrides:
    return Overrides(
        latency_sla_ms=ov.latency_sla_ms if ov.HasField("latency_sla_ms") else None,
        max_cost_usd=ov.max_cost_usd if ov.HasField("max_cost_usd") else None,
        allowed_models=tuple(ov.allowed_models),
    )


def decide_input_to_pb(inp: DecideInput) -> engine_pb2.DecideRequest:
    req = engine_pb2.DecideRequest(
        request_id=inp.request_id,
        tenant=inp.tenant,
        tier=inp.tier,
        task_hint=common_pb2.TaskType.ValueType(int(inp.task_hint) if inp.task_hint else 0),
        metadata=inp.metadata,
    )
    for m in inp.messages:
        pm = req.messages.add(role=int(m.role), content=m.content)
        if m.name is not None:
            pm.name = m.name
    if inp.max_output_tokens is not None:
        req.max_output_tokens = inp.max_output_tokens
    ov = inp.overrides
    if ov.latency_sla_ms is not None:
        req.overrides.latency_sla_ms = ov.latency_sla_ms
    if ov.max_cost_usd is not None:
        req.overrides.max_cost_usd = ov.max_cost_usd
    req.overrides.allowed_models.extend(ov.allowed_models)
    return req


def _ref_pb(m: ModelRef) -> common_pb2.ModelRef:
    return common_pb2.ModelRef(provider=m.provider, name=m.name)


def _ref(m: common_pb2.ModelRef) -> ModelRef:
    return ModelRef(m.provider, m.name)


@functools.lru_cache(maxsize=4096)
def _hop_static(
    model: ModelRef,
    on_error: tuple[ErrorPolicy, ...],
    context_window: int,
    typical_ttft_ms: int,
    supports_continuation: bool,
) -> bytes:
    """The per-model part of a hop, serialized once: decisions merge it instead of rebuilding
    the nested messages (most of the cost of converting a plan)."""
    return engine_pb2.Hop(
        model=_ref_pb(model),
        on_error=[
            engine_pb2.ErrorPolicy(
                error_class=common_pb2.ErrorClass.ValueType(p.error_class),
                action=common_pb2.Action.ValueType(p.action),
                max_retries=p.max_retries,
            )
            for p in on_error
        ],
        context_window=context_window,
        typical_ttft_ms=typical_ttft_ms,
        supports_continuation=supports_continuation,
    ).SerializeToString()


def decision_to_pb(d: Decision) -> engine_pb2.Decision:
    s = d.signals
    b = d.budget
    out = engine_pb2.Decision(
        decision_id=d.decision_id,
        request_id=d.request_id,
        policy_version=d.policy_version,
        policy_hash=d.policy_hash,
        model=_ref_pb(d.model),
        budget=engine_pb2.Budget(
            max_input_tokens=b.max_input_tokens,
            max_output_tokens=b.max_output_tokens,
            max_cost_usd=b.max_cost_usd,
            ttft_deadline_ms=b.ttft_deadline_ms,
            total_deadline_ms=b.total_deadline_ms,
        ),
        reason=d.reason,
        decision_time_us=d.decision_time_us,
        streaming_mode=common_pb2.StreamingMode.ValueType(d.streaming_mode),
        tenant=d.tenant,
        tier=d.tier,
    )
    if d.cascade is not None:
        out.cascade.first_hop = d.cascade.first_hop
        out.cascade.escalate_below = d.cascade.escalate_below
        out.cascade.verifier = d.cascade.verifier
    for h in d.chain:
        ph = out.chain.add()
        ph.MergeFromString(
            _hop_static(
                h.model, h.on_error, h.context_window, h.typical_ttft_ms, h.supports_continuation
            )
        )
        ph.index = h.index
        ph.max_output_tokens = h.max_output_tokens
        ph.estimated_cost_usd = h.estimated_cost_usd
    ps = out.signals
    ps.task = common_pb2.TaskType.ValueType(s.task)
    ps.task_confidence = s.task_confidence
    ps.difficulty = s.difficulty
    ps.input_tokens = s.input_tokens
    ps.tier = s.tier
    ps.tenant = s.tenant
    ps.latency_sla_ms = s.latency_sla_ms
    ps.task_from_hint = s.task_from_hint
    for c in s.candidates:
        pc = ps.candidates.add(
            estimated_cost_usd=c.estimated_cost_usd,
            predicted_quality=c.predicted_quality,
            score=c.score,
            eligible=c.eligible,
            excluded_reason=c.excluded_reason,
        )
        pc.model.provider = c.model.provider
        pc.model.name = c.model.name
    return out


def _hop(h: engine_pb2.Hop, i: int) -> Hop:
    if not h.model.name or not h.model.provider:
        raise InvalidInput(f"plan.chain[{i}].model", "provider and name are required")
    try:
        policies = tuple(
            ErrorPolicy(ErrorClass(p.error_class), Action(p.action), p.max_retries)
            for p in h.on_error
        )
    except ValueError:
        raise InvalidInput(f"plan.chain[{i}].on_error", "unknown error class or action") from None
    return Hop(
        index=h.index,
        model=_ref(h.model),
        on_error=policies,
        max_output_tokens=h.max_output_tokens,
        estimated_cost_usd=h.estimated_cost_usd,
        context_window=h.context_window,
        typical_ttft_ms=h.typical_ttft_ms,
        supports_continuation=h.supports_continuation,
    )


def _signals(s: engine_pb2.Signals) -> Signals:
    task = TaskType(s.task) if s.task in TaskType._value2member_map_ else TaskType.OPEN_QA
    return Signals(
        task=task,
        task_confidence=s.task_confidence,
        difficulty=s.difficulty,
        input_tokens=s.input_tokens,
        tier=s.tier,
        tenant=s.tenant,
        latency_sla_ms=s.latency_sla_ms,
        candidates=tuple(
            Candidate(
                _ref(c.model),
                c.estimated_cost_usd,
                c.predicted_quality,
                c.score,
                c.eligible,
                c.excluded_reason,
            )
            for c in s.candidates
        ),
        task_from_hint=s.task_from_hint,
    )


def decision_from_pb(d: engine_pb2.Decision) -> Decision:
    """A plan the caller holds, as domain data; structural problems are INVALID_ARGUMENT."""
    if not d.chain:
        raise InvalidInput("plan.chain", "a plan needs at least one hop")
    try:
        mode = StreamingMode(d.streaming_mode)
    except ValueError:
        raise InvalidInput(
            "plan.streaming_mode", "must be set (fail, restart, continue, buffer)"
        ) from None
    b = d.budget
    chain = tuple(_hop(h, i) for i, h in enumerate(d.chain))
    cascade = None
    if d.HasField("cascade"):
        pc = d.cascade
        if pc.first_hop + 1 >= len(chain):
            raise InvalidInput("plan.cascade.first_hop", "needs a hop after it to escalate to")
        cascade = Cascade(pc.first_hop, pc.escalate_below, pc.verifier)
    return Decision(
        decision_id=d.decision_id,
        request_id=d.request_id,
        policy_version=d.policy_version,
        policy_hash=d.policy_hash,
        model=chain[0].model,
        budget=Budget(
            b.max_input_tokens,
            b.max_output_tokens,
            b.max_cost_usd,
            b.ttft_deadline_ms,
            b.total_deadline_ms,
        ),
        chain=chain,
        signals=_signals(d.signals),
        reason=d.reason,
        decision_time_us=d.decision_time_us,
        streaming_mode=mode,
        tenant=d.tenant,
        tier=d.tier,
        cascade=cascade,
    )
