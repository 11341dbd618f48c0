"""gRPC adapter of the engine: wire types stop here."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from engine.fastpath import fast_path
from engine.service import Engine
from engine.slow_path import SlowPath
from engine.wire_decode import decide_input
from engine.wire_encode import decision_bytes
from modelroute.errors import InvalidInput
from modelroute.telemetry import tracer, tracing_enabled
from modelroute.v1 import engine_pb2

SERVICE_NAME = "modelroute.v1.RoutingEngine"


class RoutingEngineServicer:
    """Decide runs inline on the event loop: it is well under 1 ms of CPU with no I/O, and a
    thread hop would cost more than it saves. The request arrives as wire bytes: the common case
    is decided by ``engine.fastpath`` in one native call, anything else (and every call while
    tracing) by the Python path, ``engine.wire_decode`` then the engine; the answer is the
    Decision's wire bytes either way (see ``register``). Errors are mapped by
    ``modelroute.grpc_errors``, which wraps the handler when it is registered."""

    def __init__(self, engine: Engine, *, native: bool = True) -> None:
        self._slow = SlowPath(engine)
        self._tracer = tracer()
        self._fast = fast_path(engine) if native else None

    async def Decide(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        if not tracing_enabled():
            fast = self._fast
            if fast is not None:
                out = fast.decide(request)
                if out is not None:
                    return out
            return decision_bytes(await self._slow.decide(decide_input(_parse(request))))
        with self._tracer.start_as_current_span("modelroute.Decide") as span:
            decision = await self._slow.decide(decide_input(_parse(request)))
            if span.is_recording():
                span.set_attributes(
                    {
                        "modelroute.request_id": decision.request_id,
                        "modelroute.tier": decision.tier,
                        "modelroute.task": decision.signals.task.label,
                        "modelroute.model": str(decision.model),
                        "modelroute.hops": len(decision.chain),
                        "modelroute.input_tokens": decision.signals.input_tokens,
                        "modelroute.decision_time_us": decision.decision_time_us,
                        "modelroute.policy_version": decision.policy_version,
                    }
                )
            return decision_bytes(decision)


def _parse(request: bytes) -> engine_pb2.DecideRequest:
    try:
        return engine_pb2.DecideRequest.FromString(request)
    except DecodeError:
        raise InvalidInput("request", "not a valid DecideRequest message") from None


def register(server: aio.Server, engine: Engine, *, native: bool = True) -> list[str]:
    """Like the generated ``add_RoutingEngineServicer_to_server``, except that the request stays
    wire bytes (no ``request_deserializer``: the servicer reads them) and the response is already
    serialized (no ``response_serializer``). ``native`` False: always the Python path."""
    servicer = RoutingEngineServicer(engine, native=native)
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Decide": grpc.unary_unary_rpc_method_handler(
                servicer.Decide, request_deserializer=None, response_serializer=None
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    return [SERVICE_NAME]
