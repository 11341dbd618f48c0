"""``modelroute simulate``: run the provider simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from dispatcher.simulator.faults import FaultSpecError, parse_odds
from dispatcher.simulator.server import DEFAULT_DATA_DIR, Simulator
from modelroute.config import load_config
from modelroute.errors import InvalidInput

log = logging.getLogger("modelroute.simulator")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    p.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="public routing data directory")
    p.add_argument("--config", help="policy file (default: the embedded config/modelroute.toml)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="latency scale: 100 = 100x faster than config"
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=P",
        help="inject fault NAME with probability P on requests without x-sim-fault (repeatable)",
    )
    p.add_argument("--seed", type=int, help="seed of the random fault draws")


def _build(args: argparse.Namespace) -> Simulator:
    try:
        odds = parse_odds(args.fault)
    except FaultSpecError as e:
        raise InvalidInput("--fault", str(e)) from e
    if args.speed <= 0:
        raise InvalidInput("--speed", "must be > 0")
    data = Path(args.data)
    if not data.is_dir():
        raise InvalidInput("--data", f"{data} is not a directory")
    return Simulator(
        config=load_config(args.config),
        data_dir=data,
        speed=args.speed,
        fault_odds=odds,
        seed=args.seed,
    )


async def _serve(args: argparse.Namespace, sim: Simulator) -> None:
    await sim.start(args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await sim.ensure_loaded()
        log.info(
            "provider simulator ready on %s (openai %s, anthropic %s), %d models, speed %gx",
            sim.root_url,
            sim.base_url,
            sim.anthropic_base_url,
            len(sim.model_names),
            args.speed,
        )
        await stop.wait()
    finally:
        await sim.close()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sim = _build(args)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        log.info("uvloop not available; using the default event loop")
    asyncio.run(_serve(args, sim))
    return 0
