"""``DecideRequest`` to ``DecideInput`` for the engine's hot path.

The same conversion as ``modelroute.wire.decide_input_from_pb`` (the definition; the tests hold
the two equal), with the frozen ``Message`` and ``DecideInput`` dataclasses built by
``engine._policy.build`` instead of their generated ``__init__`` (which sets every field through
``object.__setattr__``). Anything unusual (an unknown or unset role or task hint) goes to the
definition, which raises the field-naming error.
"""

from __future__ import annotations

from engine._policy import build
from engine.fields import pin_fields
from modelroute.domain import DecideInput, Message, Overrides, Role, TaskType
from modelroute.v1 import engine_pb2
from modelroute.wire import decide_input_from_pb, overrides_from_pb

_ROLES = {int(r): r for r in Role}
_TASKS = {int(t): t for t in TaskType}
_NO_OVERRIDES = Overrides()

# The positional ``build`` calls below rely on this field order.
pin_fields(Message, ("role", "content", "name"), __name__)
pin_fields(
    DecideInput,
    (
        "messages",
        "request_id",
        "tenant",
        "tier",
        "task_hint",
        "max_output_tokens",
        "overrides",
        "metadata",
    ),
    __name__,
)


def decide_input(req: engine_pb2.DecideRequest) -> DecideInput:
    """``decide_input_from_pb(req)``, faster; raises the same InvalidInput on bad enums."""
    roles = _ROLES
    messages = []
    for m in req.messages:
        role = roles.get(m.role)
        if role is None:
            return decide_input_from_pb(req)
        messages.append(build(Message, (role, m.content, m.name if m.HasField("name") else None)))
    task_hint = None
    if req.task_hint:
        task_hint = _TASKS.get(req.task_hint)
        if task_hint is None:
            return decide_input_from_pb(req)
    overrides = overrides_from_pb(req.overrides) if req.HasField("overrides") else _NO_OVERRIDES
    return build(
        DecideInput,
        (
            tuple(messages),
            req.request_id,
            req.tenant,
            req.tier,
            task_hint,
            req.max_output_tokens if req.HasField("max_output_tokens") else None,
            overrides,
            dict(req.metadata) if req.metadata else {},
        ),
    )
