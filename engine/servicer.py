"""gRPC adapter of the engine: wire types stop here."""

from __future__ import annotations

from typing import Any

import grpc
from grpc import aio

from engine.service import Engine
from engine.slow_path import SlowPath
from engine.wire_decode import decide_input
from engine.wire_encode import decision_bytes
from modelroute.telemetry import tracer, tracing_enabled
from modelroute.v1 import engine_pb2

SERVICE_NAME = "modelroute.v1.RoutingEngine"


class RoutingEngineServicer:
    """Decide runs inline on the event loop: it is well under 1 ms of CPU with no I/O, and a
    thread hop would cost more than it saves. The request is read by ``engine.wire_decode``; the
    answer is the Decision's wire bytes, written by ``engine.wire_encode`` (see ``register``).
    Errors are mapped by the ErrorMappingInterceptor."""

    def __init__(self, engine: Engine) -> None:
        self._slow = SlowPath(engine)
        self._tracer = tracer()

    async def Decide(
        self, request: engine_pb2.DecideRequest, context: aio.ServicerContext[Any, Any]
    ) -> bytes:
        if not tracing_enabled():
            return decision_bytes(await self._slow.decide(decide_input(request)))
        with self._tracer.start_as_current_span("modelroute.Decide") as span:
            decision = await self._slow.decide(decide_input(request))
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


def register(server: aio.Server, engine: Engine) -> list[str]:
    """Like the generated ``add_RoutingEngineServicer_to_server``, except that the response is
    already serialized (no ``response_serializer``)."""
    servicer = RoutingEngineServicer(engine)
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Decide": grpc.unary_unary_rpc_method_handler(
                servicer.Decide,
                request_deserializer=engine_pb2.DecideRequest.FromString,
                response_serializer=None,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    return [SERVICE_NAME]
