"""``modelroute serve``: every enabled service on one port (engine and dispatcher by default)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable

from grpc import aio

from modelroute.config import load_config
from modelroute.server import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ServerHandle,
    serve_until,
    start_server,
    stop_on_signals,
)
from modelroute.telemetry import EXPORTERS
from modelroute.telemetry import configure as configure_tracing

log = logging.getLogger("modelroute.serve")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="policy file (default: the embedded config/modelroute.toml)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    p.add_argument("--only", choices=["engine", "dispatcher"], help="serve one service only")
    p.add_argument("--engine-target", help="with --only dispatcher: HOST:PORT of a remote engine")
    p.add_argument(
        "--grace-s", type=float, default=10.0, help="shutdown grace period for in-flight calls"
    )
    p.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES)
    p.add_argument("--ledger", help="ledger database path (SQLite, WAL)")
    p.add_argument(
        "--simulator",
        action="store_true",
        help="also run the built-in provider simulator (the embedded default providers point at it)",
    )
    p.add_argument("--simulator-port", type=int, default=8090)
    p.add_argument("--log-level", default="INFO")
    p.add_argument(
        "--trace",
        choices=EXPORTERS,
        default=os.environ.get("MODELROUTE_TRACE", "none"),
        help="OpenTelemetry span export (default: $MODELROUTE_TRACE or none)",
    )


@contextlib.asynccontextmanager
async def _simulator(args: argparse.Namespace) -> AsyncIterator[None]:
    if not args.simulator:
        yield
        return
    from dispatcher.simulator import start_simulator

    async with start_simulator(host=args.host, port=args.simulator_port) as sim:
        await sim.ensure_loaded()
        log.info("provider simulator on %s:%d", args.host, args.simulator_port)
        yield


async def _serve(args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    provider = configure_tracing(args.trace)
    cfg = load_config(args.config)
    registrations: list[Callable[[aio.Server], list[str]]] = []
    closers = []
    engine = None
    if args.only in (None, "engine") or not args.engine_target:
        from engine.factory import build_engine

        engine = build_engine(cfg)
    if args.only in (None, "engine"):
        from engine import servicer

        registrations.append(
            lambda server: servicer.register(server, engine, native=cfg.native_decide)  # type: ignore[arg-type]
        )
    async with _simulator(args):
        if args.only in (None, "dispatcher"):
            from dispatcher.wiring import build_for_serve

            runtime = await build_for_serve(cfg, args, engine)
            registrations.append(runtime.register)
            closers.append(runtime.aclose)
        handle: ServerHandle = await start_server(
            registrations, host=args.host, port=args.port, max_message_bytes=args.max_message_bytes
        )
        handle.on_close.extend(closers)
        # Everything built so far (config, models, stubs) lives as long as the process: move it
        # out of the collector's way so collections on the request path stay short.
        gc.collect()
        gc.freeze()
        log.info(
            "modelroute ready on %s:%d (services: %s; policy %s #%s)",
            args.host,
            handle.port,
            ", ".join(handle.services),
            cfg.version,
            cfg.content_hash,
        )
        await serve_until(handle, stop, args.grace_s)
    if provider is not None:
        provider.shutdown()
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        log.info("uvloop not available; using the default event loop")
    return asyncio.run(_serve(args))
