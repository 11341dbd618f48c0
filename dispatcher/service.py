"""gRPC servicers of the dispatcher: ``Dispatcher.Execute`` and ``Admin``. Wire <-> domain only.

``Execute`` is an async generator that yields numbered ``ExecuteEvent``s (not
``context.write``, which OpenTelemetry's aio instrumentation breaks). Failures before the
stream starts (bad input, kill switch, budget) end the call with the error's gRPC status; once
streaming, every outcome is a terminal event. A client that hangs up cancels the handler task,
which cancels the attempts (not a provider failure: breakers do not count it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio
from opentelemetry.trace import Span, Status, StatusCode

from dispatcher import events as ev
from dispatcher.admin_auth import AdminAuth
from dispatcher.executor import Executor, GenerationParams
from dispatcher.killswitch import KillScope, KillSwitch, KillSwitchBoard
from engine.validate import validate_request
from engine.wire_encode import DecisionEncoder
from modelroute.domain import DecideInput, Decision, ModelRef
from modelroute.errors import InvalidInput, ModelrouteError
from modelroute.telemetry import tracer
from modelroute.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc
from modelroute.wire import decide_input_from_pb, decision_from_pb

DISPATCHER_SERVICE = "modelroute.v1.Dispatcher"
ADMIN_SERVICE = "modelroute.v1.Admin"

Decide = Callable[[DecideInput], Awaitable[Decision]]
Ctx = aio.ServicerContext[Any, Any]


def _ref(m: ModelRef) -> common_pb2.ModelRef:
    return common_pb2.ModelRef(provider=m.provider, name=m.name)


def _usage(u: ev.Usage) -> dispatcher_pb2.Usage:
    return dispatcher_pb2.Usage(
        input_tokens=u.input_tokens, output_tokens=u.output_tokens, cost_usd=u.cost_usd
    )


# The dispatcher's own encoder: plans decoded from the wire (a remote engine, a caller's plan)
# bring new model objects each time and must not make the engine's encoder rebuild its tables.
_PLAN_BYTES = DecisionEncoder().encode


def event_to_pb(e: ev.Event, seq: int, request_id: str) -> dispatcher_pb2.ExecuteEvent:
    out = dispatcher_pb2.ExecuteEvent(seq=seq, request_id=request_id)
    if isinstance(e, ev.Delta):
        out.delta.text = e.text
        out.delta.attempt = e.attempt
    elif isinstance(e, ev.UsageEvent):
        out.usage.CopyFrom(_usage(e.usage))
    elif isinstance(e, ev.AttemptStarted):
        out.attempt_started.CopyFrom(
            dispatcher_pb2.AttemptStarted(
                attempt=e.attempt, hop=e.hop, model=_ref(e.model), hedge=e.hedge
            )
        )
    elif isinstance(e, ev.AttemptFailed):
        out.attempt_failed.CopyFrom(
            dispatcher_pb2.AttemptFailed(
                attempt=e.attempt,
                hop=e.hop,
                model=_ref(e.model),
                error_class=int(e.error_class),  # type: ignore[arg-type]
                message=e.message,
                next=int(e.next),  # type: ignore[arg-type]
                retry_after_ms=e.retry_after_ms,
            )
        )
    elif isinstance(e, ev.Reset):
        out.reset.CopyFrom(dispatcher_pb2.Reset(reason=e.reason, discarded_chars=e.discarded_chars))
    elif isinstance(e, ev.Escalated):
        out.escalated.CopyFrom(
            dispatcher_pb2.Escalated(
                attempt=e.attempt,
                hop=e.hop,
                model=_ref(e.model),
                confidence=e.confidence,
                threshold=e.threshold,
            )
        )
    elif isinstance(e, ev.Completed | ev.Failed):
        _terminal_pb(out, e)
    else:
        # The engine's C encoder writes the plan's bytes (held equal to decision_to_pb by
        # tests/unit/test_wire_encode.py); parsing them costs a tenth of building the message.
        out.decision.MergeFromString(_PLAN_BYTES(e.plan))
    return out


def _terminal_pb(out: dispatcher_pb2.ExecuteEvent, e: ev.Completed | ev.Failed) -> None:
    if isinstance(e, ev.Completed):
        out.completed.CopyFrom(
            dispatcher_pb2.Completed(
                finish_reason=int(e.finish_reason),  # type: ignore[arg-type]
                model=_ref(e.model),
                attempts=e.attempts,
                usage=_usage(e.usage),
                ttft_ms=e.ttft_ms,
                duration_ms=e.duration_ms,
                escalated=e.escalated,
                hedged=e.hedged,
            )
        )
    else:
        out.failed.CopyFrom(
            dispatcher_pb2.Failed(
                error_class=int(e.error_class),  # type: ignore[arg-type]
                message=e.message,
                partial=e.partial,
                attempts=e.attempts,
                usage=_usage(e.usage),
            )
        )


def params_from_pb(p: dispatcher_pb2.GenerationParams) -> GenerationParams:
    return GenerationParams(
        temperature=p.temperature if p.HasField("temperature") else None,
        top_p=p.top_p if p.HasField("top_p") else None,
        stop=tuple(p.stop),
    )


class DispatcherServicer(dispatcher_pb2_grpc.DispatcherServicer):
    def __init__(self, executor: Executor, decide: Decide) -> None:
        self._executor = executor
        self._decide = decide
        self._tracer = tracer()

    async def _prepare(self, request: dispatcher_pb2.ExecuteRequest) -> tuple[Any, ...]:
        try:
            inp = decide_input_from_pb(request.request)
            validate_request(inp, self._executor.config)
        except InvalidInput as e:
            raise InvalidInput(f"request.{e.field}", e.message.split(": ", 1)[-1]) from None
        if request.HasField("plan"):
            plan = decision_from_pb(request.plan)
        else:
            plan = await self._decide(inp)
        run = await self._executor.start(inp, plan, params_from_pb(request.params))
        return run, run.request_id

    async def Execute(
        self, request: dispatcher_pb2.ExecuteRequest, context: Ctx
    ) -> AsyncIterator[dispatcher_pb2.ExecuteEvent]:
        try:
            run, request_id = await self._prepare(request)
        except ModelrouteError as e:
            await context.abort(e.grpc_status, e.message)
        with self._tracer.start_as_current_span("modelroute.Execute") as span:
            span.set_attribute("modelroute.request_id", request_id)
            seq = 0
            async for event in run.events():
                seq += 1
                pb = event_to_pb(event, seq, request_id)
                if span.is_recording():
                    trace_event(span, pb)
                yield pb


def trace_event(span: Span, pb: dispatcher_pb2.ExecuteEvent) -> None:
    """Attempts, failures, resets and the outcome as span events and attributes (no text)."""
    kind = pb.WhichOneof("event")
    if kind == "attempt_started":
        a = pb.attempt_started
        span.add_event("attempt", {"attempt": a.attempt, "hop": a.hop, "model": a.model.name})
    elif kind == "attempt_failed":
        f = pb.attempt_failed
        cls = common_pb2.ErrorClass.Name(f.error_class)
        span.add_event("attempt_failed", {"attempt": f.attempt, "error_class": cls})
    elif kind == "reset":
        span.add_event("reset", {"discarded_chars": pb.reset.discarded_chars})
    elif kind == "completed":
        c = pb.completed
        span.set_attributes(
            {
                "modelroute.outcome": "completed",
                "modelroute.model": c.model.name,
                "modelroute.attempts": c.attempts,
                "modelroute.cost_usd": c.usage.cost_usd,
                "modelroute.ttft_ms": c.ttft_ms,
            }
        )
    elif kind == "failed":
        cls = common_pb2.ErrorClass.Name(pb.failed.error_class)
        span.set_attributes({"modelroute.outcome": "failed", "modelroute.error_class": cls})
        span.set_status(Status(StatusCode.ERROR, cls))


def _switch_pb(s: KillSwitch) -> dispatcher_pb2.KillSwitch:
    return dispatcher_pb2.KillSwitch(
        scope=int(s.scope),  # type: ignore[arg-type]
        value=s.value,
        engaged=s.engaged,
        reason=s.reason,
        changed_at_unix_ms=s.changed_at_unix_ms,
    )


_BREAKER_STATES = {
    "closed": dispatcher_pb2.BREAKER_STATE_KIND_CLOSED,
    "open": dispatcher_pb2.BREAKER_STATE_KIND_OPEN,
    "half_open": dispatcher_pb2.BREAKER_STATE_KIND_HALF_OPEN,
}


class AdminServicer(dispatcher_pb2_grpc.AdminServicer):
    """Kill switches and breaker states; every call passes ``AdminAuth`` first (errors are
    mapped to status codes by modelroute.grpc_errors)."""

    def __init__(
        self, executor: Executor, kills: KillSwitchBoard, auth: AdminAuth | None = None
    ) -> None:
        self._executor = executor
        self._kills = kills
        self._auth = auth or AdminAuth(None)

    async def SetKillSwitch(
        self, request: dispatcher_pb2.SetKillSwitchRequest, context: Ctx
    ) -> dispatcher_pb2.KillSwitch:
        self._auth.check(context.invocation_metadata())
        try:
            if request.scope not in KillScope._value2member_map_:
                raise InvalidInput("scope", "must be tier, tenant, provider or model")
            if not request.value.strip():
                raise InvalidInput("value", "must name the tier, tenant, provider or model")
        except InvalidInput as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
        sw = self._kills.set(
            KillScope(request.scope), request.value.strip(), request.engaged, request.reason
        )
        return _switch_pb(sw)

    async def ListKillSwitches(
        self, request: dispatcher_pb2.ListKillSwitchesRequest, context: Ctx
    ) -> dispatcher_pb2.ListKillSwitchesResponse:
        self._auth.check(context.invocation_metadata())
        return dispatcher_pb2.ListKillSwitchesResponse(
            switches=[_switch_pb(s) for s in self._kills.list()]
        )

    async def ListBreakers(
        self, request: dispatcher_pb2.ListBreakersRequest, context: Ctx
    ) -> dispatcher_pb2.ListBreakersResponse:
        self._auth.check(context.invocation_metadata())
        snapshot = getattr(self._executor.breakers, "snapshot", None)
        out = dispatcher_pb2.ListBreakersResponse()
        for b in snapshot() if snapshot is not None else []:
            out.breakers.add(
                endpoint=_ref(b.endpoint),
                state=_BREAKER_STATES.get(b.state, dispatcher_pb2.BREAKER_STATE_KIND_UNSPECIFIED),
                fail_count=b.fail_count,
                changed_at_unix_ms=b.changed_at_unix_ms,
            )
        return out
