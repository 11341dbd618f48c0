"""What ``modelroute serve`` needs to host the dispatcher: ``build_for_serve`` turns the command's
arguments into a ``DispatcherRuntime`` (engine in-process or remote, SQLite ledger by default).
"""

from __future__ import annotations

import argparse
import logging

from dispatcher.ledger import DEFAULT_LEDGER_PATH
from dispatcher.ledger.sqlite import SqliteLedger
from dispatcher.runtime import DispatcherRuntime, RemoteEngine, build_dispatcher, in_process
from dispatcher.service import Decide
from engine.service import Engine
from modelroute.config import Config
from modelroute.errors import ConfigError

log = logging.getLogger("modelroute.dispatcher")


async def build_for_serve(
    cfg: Config, args: argparse.Namespace, engine: Engine | None
) -> DispatcherRuntime:
    target = getattr(args, "engine_target", None)
    decide: Decide
    if target:
        decide = RemoteEngine(target)
        log.info("dispatcher asks the engine at %s", target)
    elif engine is not None:
        decide = in_process(engine)
    else:
        raise ConfigError("serve: the dispatcher needs an engine (in-process or --engine-target)")
    path = getattr(args, "ledger", None) or DEFAULT_LEDGER_PATH
    ledger = await SqliteLedger.open(path)
    log.info("ledger at %s", path)
    # Fault headers are honoured only next to the built-in simulator (a test setup).
    allow_sim = bool(getattr(args, "simulator", False))
    return await build_dispatcher(cfg, decide=decide, ledger=ledger, allow_sim_headers=allow_sim)
