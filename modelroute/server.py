"""One grpc.aio server hosting the enabled services, with health, reflection, error mapping (applied
to every handler the ``register`` functions add) and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from modelroute.grpc_errors import MappedServer

log = logging.getLogger("modelroute.server")

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# The longest total deadline of the embedded policy's tiers (batch: 600 s).
UNREQUESTED_CALL_MAX_S = 600


@dataclass
class ServerHandle:
    """A started server: its bound port, the services it serves, and how to stop it."""

    server: aio.Server
    port: int
    services: list[str]
    health: HealthServicer
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def stop(self, grace_s: float) -> None:
        """Stop accepting calls, let in-flight calls finish within ``grace_s``, then clean up."""
        for name in [*self.services, ""]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace_s)
        for close in reversed(self.on_close):
            await close()


async def start_server(
    register: Sequence[Callable[[aio.Server], list[str]]],
    *,
    host: str = "127.0.0.1",
    port: int = 50051,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> ServerHandle:
    """Build, bind and start a server; each ``register`` adds servicers and returns their names."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
        # A call that arrived while the loop was busy waits in gRPC core until the server asks
        # for it; core cancels it after this many seconds (default 30: a burst of streams on a
        # saturated process ended as CANCELLED). The client's own deadline should decide.
        ("grpc.server_max_unrequested_time_in_server", UNREQUESTED_CALL_MAX_S),
    ]
    server = aio.server(options=options)
    mapped = MappedServer(server)
    services: list[str] = []
    for reg in register:
        services.extend(reg(mapped))
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    for name in [*services, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return ServerHandle(server, bound, services, health_servicer)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT; install it before announcing readiness, so a signal
    sent right after the ready line is never lost."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_until(handle: ServerHandle, stop: asyncio.Event, grace_s: float) -> None:
    """Serve until ``stop`` is set, then shut down gracefully."""
    await stop.wait()
    log.info("shutting down: finishing in-flight calls (grace %.1f s)", grace_s)
    await handle.stop(grace_s)
    log.info("stopped")
