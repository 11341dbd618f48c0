"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dispatcher.runtime import build_dispatcher, in_process
from dispatcher.simulator import start_simulator
from dispatcher.simulator.replay import ReplayStore
from engine import servicer
from engine.factory import build_engine
from modelroute.client import Client
from modelroute.config import DEFAULT_CONFIG_PATH, load_config, parse_config
from modelroute.server import start_server


@pytest.fixture
async def client(store: ReplayStore) -> AsyncIterator[Client]:
    """A client of a served engine + dispatcher over the simulator (fault headers allowed)."""
    engine = build_engine(load_config())
    async with start_simulator(speed=1000, replay=store) as sim:
        raw = DEFAULT_CONFIG_PATH.read_text().replace("http://127.0.0.1:8090", sim.root_url)
        runtime = await build_dispatcher(
            parse_config(raw.encode()),
            decide=in_process(engine),
            ledger=None,
            allow_sim_headers=True,
        )
        handle = await start_server(
            [lambda s: servicer.register(s, engine), runtime.register], port=0
        )
        handle.on_close.append(runtime.aclose)
        async with Client(f"127.0.0.1:{handle.port}", timeout_s=10) as c:
            yield c
        await handle.stop(1.0)
