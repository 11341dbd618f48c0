"""Assembles a dispatcher: adapters, breakers, kill switches, spend store, executor, servicers.

``modelroute serve`` calls ``build_dispatcher`` and registers the result on its gRPC server;
tests do the same on port 0. ``decide`` is how plans are made when a caller sends none: the
in-process engine (``in_process``) or a gRPC client to a remote engine (``RemoteEngine``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from grpc import aio

from dispatcher.admin_auth import AdminAuth
from dispatcher.breakers import BreakerBoard
from dispatcher.executor import Executor, ExecutorOptions
from dispatcher.killswitch import KillSwitchBoard
from dispatcher.ledger.store import LedgerStore
from dispatcher.providers.base import Provider
from dispatcher.providers.registry import build_providers, close_providers
from dispatcher.service import (
    ADMIN_SERVICE,
    DISPATCHER_SERVICE,
    AdminServicer,
    Decide,
    DispatcherServicer,
)
from dispatcher.state import InMemorySpendStore, SpendStore
from engine.service import Engine
from engine.slow_path import SlowPath
from modelroute.config import Config
from modelroute.domain import DecideInput, Decision
from modelroute.v1 import dispatcher_pb2_grpc, engine_pb2_grpc
from modelroute.wire import decide_input_to_pb, decision_from_pb

log = logging.getLogger("modelroute.dispatcher")


def in_process(engine: Engine) -> Decide:
    """Decide with an engine in this process: inline like the engine's own servicer (well under
    1 ms of CPU), and on the slow-path worker when the tier's policy asks for it."""
    return SlowPath(engine).decide


class RemoteEngine:
    """Decide over gRPC with an engine in another process; errors keep their status."""

    def __init__(self, target: str, timeout_s: float = 2.0) -> None:
        self._channel = aio.insecure_channel(target)
        self._stub = engine_pb2_grpc.RoutingEngineStub(self._channel)
        self._timeout_s = timeout_s

    async def __call__(self, inp: DecideInput) -> Decision:
        from modelroute.errors import InvalidInput, ModelrouteError, Unavailable

        try:
            pb = await self._stub.Decide(decide_input_to_pb(inp), timeout=self._timeout_s)
        except aio.AioRpcError as e:
            code = e.code()
            err: ModelrouteError
            if code.name == "INVALID_ARGUMENT":
                field, _, problem = (e.details() or "request: invalid").partition(": ")
                err = InvalidInput(field, problem or "invalid")
            else:
                err = Unavailable(f"engine call failed: {code.name}")
                err.grpc_status = code
            raise err from None
        return decision_from_pb(pb)

    async def aclose(self) -> None:
        await self._channel.close(None)


@dataclass
class DispatcherRuntime:
    executor: Executor
    providers: Mapping[str, Provider]
    breakers: BreakerBoard
    kills: KillSwitchBoard
    ledger: LedgerStore | None
    decide: Decide
    owns_providers: bool = True

    def register(self, server: aio.Server) -> list[str]:
        """Add the Dispatcher and Admin servicers; returns their service names."""
        dispatcher_pb2_grpc.add_DispatcherServicer_to_server(
            DispatcherServicer(self.executor, self.decide), server
        )
        auth = AdminAuth.from_env(self.executor.config.admin_token_env)
        dispatcher_pb2_grpc.add_AdminServicer_to_server(
            AdminServicer(self.executor, self.kills, auth), server
        )
        return [DISPATCHER_SERVICE, ADMIN_SERVICE]

    async def aclose(self) -> None:
        """Finish bookkeeping, flush and close the ledger, close adapters' connection pools."""
        await self.executor.drain()
        if self.ledger is not None:
            await self.ledger.aclose()
        if self.owns_providers:
            await close_providers(self.providers)
        closer = getattr(self.decide, "aclose", None)
        if closer is not None:
            await closer()


async def build_dispatcher(
    config: Config,
    *,
    decide: Decide,
    ledger: LedgerStore | None,
    allow_sim_headers: bool = False,
    providers: Mapping[str, Provider] | None = None,
    breakers: BreakerBoard | None = None,
    kills: KillSwitchBoard | None = None,
    spend: SpendStore | None = None,
) -> DispatcherRuntime:
    """A ready dispatcher. ``providers`` (tests) replaces the adapters built from ``config``;
    the runtime then leaves closing them to the caller."""
    board = breakers or BreakerBoard()
    switches = kills or KillSwitchBoard()
    adapters = providers if providers is not None else build_providers(config)
    executor = Executor(
        config,
        adapters,
        breakers=board,
        kills=switches,
        spend=spend or InMemorySpendStore(),
        ledger=ledger,
        options=ExecutorOptions(allow_sim_headers=allow_sim_headers),
    )
    if allow_sim_headers:
        log.warning("simulator fault headers from request metadata are enabled (test mode)")
    return DispatcherRuntime(
        executor, adapters, board, switches, ledger, decide, owns_providers=providers is None
    )
