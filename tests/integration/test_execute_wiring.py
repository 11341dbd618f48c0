"""``build_for_serve``: what ``modelroute serve`` hosts, built from its arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dispatcher.service import ADMIN_SERVICE, DISPATCHER_SERVICE
from dispatcher.wiring import build_for_serve
from engine.factory import build_engine
from modelroute.config import load_config
from modelroute.errors import ConfigError
from modelroute.server import start_server


async def test_serve_wiring_hosts_dispatcher_and_admin_with_a_ledger(tmp_path: Path) -> None:
    cfg = load_config()
    ledger = tmp_path / "ledger.db"
    args = argparse.Namespace(engine_target=None, ledger=str(ledger), simulator=False)
    runtime = await build_for_serve(cfg, args, build_engine(cfg))
    handle = await start_server([runtime.register], port=0)
    handle.on_close.append(runtime.aclose)
    try:
        assert handle.services == [DISPATCHER_SERVICE, ADMIN_SERVICE]
        assert not runtime.executor.options.allow_sim_headers
    finally:
        await handle.stop(0.5)
    assert ledger.exists()


async def test_serve_wiring_needs_an_engine() -> None:
    args = argparse.Namespace(engine_target=None, ledger=None, simulator=True)
    with pytest.raises(ConfigError, match="engine"):
        await build_for_serve(load_config(), args, None)
