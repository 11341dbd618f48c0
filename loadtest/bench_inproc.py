"""The dispatcher as a library (engine + executor + ledger, no gRPC) in ``make bench-execute``.

``python -m loadtest.bench_inproc CONFIG MODEL PROMPT MAX_TOKENS LEDGER TIER C:N:R[:steady] [...]`` runs
N requests at concurrency C through ``Engine.decide`` and ``Executor.start(...).events()`` in
this process (providers from CONFIG, i.e. the simulator) and prints one JSON line per phase in the
format of ``loadtest.bench_litellm``: the same shape as the LiteLLM Router peer, a library too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from dispatcher.events import Completed, Delta, Failed
from dispatcher.executor import Executor
from dispatcher.ledger import SqliteLedger
from dispatcher.providers.registry import build_providers, close_providers
from engine.factory import build_engine
from loadtest.bench_report import Load
from modelroute.config import load_config
from modelroute.domain import DecideInput, Message, Overrides, Role


async def _one(
    engine: Any, ex: Executor, model: str, prompt: str, cap: int, tier: str
) -> dict[str, Any]:
    t0 = time.perf_counter()
    ttft, chunks, error, terminal = None, 0, "", False
    inp = DecideInput(
        messages=(Message(Role.USER, prompt),),
        tenant="bench",
        tier=tier,
        max_output_tokens=cap,
        overrides=Overrides(allowed_models=(model,)),
    )
    run = await ex.start(inp, engine.decide(inp))
    async for ev in run.events():
        if isinstance(ev, Delta):
            chunks += 1
            if ttft is None:
                ttft = time.perf_counter() - t0
        elif isinstance(ev, Completed | Failed):
            terminal = True
            if isinstance(ev, Failed):
                error = f"failed {ev.error_class.name}: {ev.message[:60]}"
    if not terminal:
        error = "no terminal event"
    return {"ttft_s": ttft, "total_s": time.perf_counter() - t0, "chunks": chunks, "error": error}


async def _phase(
    engine: Any, ex: Executor, args: tuple[str, str, int, str], c: int, n: int, ramp_s: float
) -> dict[str, Any]:
    sem = asyncio.Semaphore(c)

    async def one(i: int) -> dict[str, Any]:
        await asyncio.sleep(ramp_s * i / n)
        async with sem:
            return await _one(engine, ex, *args)

    cpu0, t0 = time.process_time(), time.perf_counter()
    samples = await asyncio.gather(*(one(i) for i in range(n)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"concurrency": c, "samples": samples, "wall_s": wall, "cpu_s": cpu}


async def main(argv: list[str]) -> None:
    config, model, prompt, cap, ledger_path, tier, *phases = argv
    cfg = load_config(config)
    engine = build_engine(cfg)
    providers = build_providers(cfg)
    ledger = await SqliteLedger.open(ledger_path)
    ex = Executor(cfg, providers, ledger=ledger)
    args = (model, prompt, int(cap), tier)
    try:
        for _ in range(5):
            await _one(engine, ex, *args)  # warm up
        for spec in phases:
            load = Load.parse(spec)
            doc = await _phase(engine, ex, args, load.concurrency, load.n, load.ramp_s)
            doc["steady"] = load.steady
            print(json.dumps(doc), flush=True)
    finally:
        await ex.drain()
        await ledger.aclose()
        await close_providers(providers)


if __name__ == "__main__":
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main(sys.argv[1:]))
