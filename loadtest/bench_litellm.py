"""The LiteLLM Router as a peer in ``make bench-execute``, run in its own process.

``python -m loadtest.bench_litellm BASE_URL MODEL PROMPT MAX_TOKENS C:N [C:N ...]`` streams N
requests at concurrency C through ``litellm.Router.acompletion`` (the library, in-process) from an
OpenAI-compatible server, and prints one JSON line per phase: TTFT and total seconds per request,
chunks, errors, and the CPU seconds of this process during the phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import sys
import time
from typing import Any

from loadtest.bench_report import Load

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map fetch at import


async def _one(router: Any, model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    ttft = None
    chunks = 0
    try:
        stream = await router.acompletion(
            model="bench",
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            max_tokens=max_tokens,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - a peer's failure is a figure, not a crash
        return {"ttft_s": ttft, "total_s": 0.0, "chunks": chunks, "error": type(e).__name__}
    return {"ttft_s": ttft, "total_s": time.perf_counter() - t0, "chunks": chunks, "error": ""}


async def _phase(router: Any, args: tuple[str, str, int], load: Load) -> dict[str, Any]:
    sem = asyncio.Semaphore(load.concurrency)

    async def one(i: int) -> dict[str, Any]:
        if load.ramp_s:
            await asyncio.sleep(load.ramp_s * i / load.n)
        async with sem:
            return await _one(router, *args)

    cpu0, t0 = time.process_time(), time.perf_counter()
    samples = await asyncio.gather(*(one(i) for i in range(load.n)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "concurrency": load.concurrency,
        "steady": load.steady,
        "samples": samples,
        "wall_s": wall,
        "cpu_s": cpu,
    }


async def main(argv: list[str]) -> None:
    base_url, model, prompt, max_tokens, *phases = argv
    litellm: Any = importlib.import_module("litellm")  # optional: the `bench` extra
    litellm.suppress_debug_info = True
    key = os.environ.get("MODELROUTE_SIMULATOR_KEY") or "unused"
    router = litellm.Router(
        model_list=[
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": base_url,
                    "api_key": key,
                },
            }
        ]
    )
    args = (model, prompt, int(max_tokens))
    for _ in range(5):
        await _one(router, *args)  # warm up
    for spec in phases:
        print(json.dumps(await _phase(router, args, Load.parse(spec))), flush=True)


if __name__ == "__main__":
    with contextlib.suppress(ImportError):  # the same event loop as the dispatcher's
        import uvloop

        uvloop.install()
    asyncio.run(main(sys.argv[1:]))
