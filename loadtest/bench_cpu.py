"""The dispatcher's own CPU per request and per chunk, without gRPC: a steadier A/B measure.

``make bench-execute`` measures the dispatcher process over gRPC, where gRPC core's writes and
threads are most of a chunk's CPU and the shared machine's drift dominates a comparison. This
drives ``Dispatcher.Execute`` in-process instead, as ``modelroute serve`` registers it (the error
mapping, the servicer, the engine, the executor, the real adapters, the SQLite ledger, each event
serialized as gRPC would), against the simulator in its own process, and reports this process's
CPU time (all threads) per request at two answer lengths: a long answer (``--max-tokens``, ~25
chunks) and a one-chunk answer. Their difference per extra chunk is the per-chunk cost; the
one-chunk figure is mostly the per-request cost.

``python -m loadtest.bench_cpu [--n 1500] [--concurrency 100] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc

from dispatcher.ledger.sqlite import SqliteLedger
from dispatcher.runtime import build_dispatcher, in_process
from dispatcher.service import DispatcherServicer
from engine.factory import build_engine
from loadtest.bench_execute import MODEL, pick_prompt
from loadtest.bench_procs import simulator
from loadtest.raw_sse import RawSSEClient
from modelroute.config import load_config
from modelroute.grpc_errors import map_errors
from modelroute.v1 import common_pb2, dispatcher_pb2, engine_pb2


class _Context:
    """The servicer context calls Execute makes on its success path (none); abort raises."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise RuntimeError(f"aborted: {code.name} {details}")


async def _provider_chunks(port: int, prompt: str, max_tokens: int) -> int:
    """Text chunks the simulator sends for this prompt and cap (deltas may merge some)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
    body["max_tokens"] = max_tokens
    client = RawSSEClient("127.0.0.1", port)
    n = 0
    try:
        async for data in client.events("/v1/chat/completions", json.dumps(body).encode(), {}):
            if data != b"[DONE]":
                choices = json.loads(data).get("choices") or [{}]
                n += bool(choices[0].get("delta", {}).get("content"))
    finally:
        await client.aclose()
    return n


def _request(prompt: str, max_tokens: int) -> dispatcher_pb2.ExecuteRequest:
    return dispatcher_pb2.ExecuteRequest(
        request=engine_pb2.DecideRequest(
            request_id=uuid.uuid4().hex,
            tenant="bench",
            messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=prompt)],
            max_output_tokens=max_tokens,
            overrides=engine_pb2.Overrides(allowed_models=[MODEL]),
        )
    )


async def _phase(
    execute: Any, prompt: str, c: int, n: int, ramp_s: float, max_tokens: int
) -> dict[str, float]:
    """``n`` Execute calls, at most ``c`` at once, starts spread over ``ramp_s``."""
    sem = asyncio.Semaphore(c)
    events = deltas = errors = 0

    async def one(i: int) -> None:
        nonlocal events, deltas, errors
        await asyncio.sleep(ramp_s * i / n)
        async with sem:
            async for pb in execute(_request(prompt, max_tokens), _Context()):
                pb.SerializeToString()
                events += 1
                kind = pb.WhichOneof("event")
                deltas += kind == "delta"
                errors += kind == "failed"

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    cpu = time.process_time() - cpu0
    return {
        "cpu_us_per_req": 1e6 * cpu / n,
        "deltas_per_req": deltas / n,
        "events_per_req": events / n,
        "wall_s": time.perf_counter() - t0,
        "errors": errors,
    }


async def main(args: argparse.Namespace) -> None:
    async with simulator(args.speed) as (_, port, cfg_path):
        prompt = await pick_prompt(port)
        chunks = [await _provider_chunks(port, prompt, m) for m in (args.max_tokens, 4)]
        cfg = load_config(cfg_path)
        engine = build_engine(cfg)
        tmp = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
        ledger = await SqliteLedger.open(tmp / "ledger.db")
        runtime = await build_dispatcher(cfg, decide=in_process(engine), ledger=ledger)
        servicer = DispatcherServicer(runtime.executor, runtime.decide)
        handler = grpc.unary_stream_rpc_method_handler(servicer.Execute)
        execute = map_errors(handler, "/modelroute.v1.Dispatcher/Execute").unary_stream
        gc.collect()
        gc.freeze()
        try:
            await _phase(execute, prompt, 1, 10, 0.0, args.max_tokens)  # warm up
            long_, short = [], []
            ramp = args.n * args.stream_s / args.concurrency
            for r in range(args.rounds):
                a = await _phase(execute, prompt, args.concurrency, args.n, ramp, args.max_tokens)
                b = await _phase(execute, prompt, args.concurrency, args.n, ramp / 5, 4)
                long_.append(a)
                short.append(b)
                print(f"round {r}: long {_fmt(a)} | short {_fmt(b)}", flush=True)
            _summary(long_, short, chunks)
        finally:
            await runtime.aclose()


def _fmt(p: dict[str, float]) -> str:
    return (
        f"{p['cpu_us_per_req']:.0f} us/req, {p['deltas_per_req']:.1f} deltas, "
        f"{p['events_per_req']:.1f} events, {p['wall_s']:.1f} s, {p['errors']:.0f} failed"
    )


def _summary(
    long_: list[dict[str, float]], short: list[dict[str, float]], chunks: list[int]
) -> None:
    lo = statistics.median(p["cpu_us_per_req"] for p in long_)
    sh = statistics.median(p["cpu_us_per_req"] for p in short)
    extra = chunks[0] - chunks[1]
    per_chunk = (lo - sh) / extra if extra > 0 else float("nan")
    print(
        f"median: {chunks[0]}-chunk answer {lo:.0f} us/request, {chunks[1]}-chunk answer "
        f"{sh:.0f} us/request, {per_chunk:.1f} us per extra provider chunk"
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--n", type=int, default=1500, help="requests per phase")
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--speed", type=float, default=2.0, help="simulator latency scale")
    p.add_argument("--stream-s", type=float, default=1.0, help="a long stream's duration")
    return p.parse_args()


if __name__ == "__main__":
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main(parse_args()))
