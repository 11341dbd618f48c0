"""gRPC adapter of the engine: wire types stop here."""

from __future__ import annotations

from typing import Any

from grpc import aio

from engine.service import Engine
from modelroute.telemetry import tracer
from modelroute.v1 import engine_pb2, engine_pb2_grpc
from modelroute.wire import decide_input_from_pb, decision_to_pb

SERVICE_NAME = "modelroute.v1.RoutingEngine"


class RoutingEngineServicer(engine_pb2_grpc.RoutingEngineServicer):
    """Decide runs inline on the event loop: it is ~1 ms of CPU with no I/O, and a thread hop
    would cost more than it saves. Errors are mapped by the ErrorMappingInterceptor."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._tracer = tracer()

    async def Decide(
        self, request: engine_pb2.DecideRequest, context: aio.ServicerContext[Any, Any]
    ) -> engine_pb2.Decision:
        with self._tracer.start_as_current_span("modelroute.Decide") as span:
            decision = self._engine.decide(decide_input_from_pb(request))
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
            return decision_to_pb(decision)


def register(server: aio.Server, engine: Engine) -> list[str]:
    engine_pb2_grpc.add_RoutingEngineServicer_to_server(RoutingEngineServicer(engine), server)
    return [SERVICE_NAME]
