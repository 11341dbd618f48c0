"""``make bench-execute``: streaming straight from the provider simulator vs through the dispatcher.

One run, all on loopback, bounded in count and time:
  1. ``modelroute simulate`` (its own process) serves the same model and prompt to every client.
  2. Direct: an httpx client streams OpenAI Chat Completions from it (the floor).
  3. Dispatcher: ``modelroute serve`` (engine in-process, ledger on) in its own process; a gRPC
     client streams ``Execute`` restricted to the same model and prompt.
  4. LiteLLM's Router (library, in its own process) against the same simulator, when installed
     (``pip install -e '.[bench]'``).
At concurrency 1, 100 started at once (burst), 100 open throughout (steady: starts spread at 100
per stream duration) and 1,000 (the no-errors check) it prints time to first token (TTFT)
p50/p99 and the time added over direct, total time added, chunks relayed per CPU-second of the
router's process, memory per idle stream, and the ratios. Direct, the dispatcher and the raw
bare relay are driven twice: by the compiled client ``loadtest/goload`` (see
``loadtest.bench_go``) and by the Python client. It is not a test: it prints figures. Clients
share the machine with the servers, so figures at high concurrency include client time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import grpc
import httpx

from loadtest import bench_go
from loadtest.bench_procs import (
    Child,
    PeakStreams,
    cpu_seconds,
    dispatcher,
    open_streams,
    rss_bytes,
    run_captured,
    simulator,
)
from loadtest.bench_relay import relay
from loadtest.bench_report import Call, Load, Phase, Sample, phases_from_json, report
from loadtest.raw_sse import RawSSEClient
from modelroute.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc, engine_pb2

MODEL = "gpt-3.5-turbo-1106"  # an OpenAI-protocol model of the embedded policy
PROMPT = "Explain in a few paragraphs how a circuit breaker protects a service from a failing dependency."
MAX_TOKENS = 128
KEY_ENV = "MODELROUTE_SIMULATOR_KEY"
CAPACITY_TIER = "bench-capacity"  # see loadtest.bench_procs.BENCH_TIER


async def drive(call: Call, load: Load) -> list[Sample]:
    """``load.n`` calls, at most ``load.concurrency`` at once; starts spread over its ramp."""
    sem = asyncio.Semaphore(load.concurrency)
    n, ramp_s = load.n, load.ramp_s

    async def one(i: int) -> Sample:
        if ramp_s:
            await asyncio.sleep(ramp_s * i / n)
        async with sem:
            try:
                return await call()
            except grpc.aio.AioRpcError as e:
                return Sample(error=f"rpc {e.code().name}: {(e.details() or '')[:60]}")
            except (grpc.RpcError, httpx.HTTPError, OSError, asyncio.IncompleteReadError) as e:
                return Sample(error=type(e).__name__)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


# -- direct -------------------------------------------------------------------------------------
def direct_body(prompt: str) -> bytes:
    """The Chat Completions request both direct clients send to the simulator."""
    return json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": MAX_TOKENS,
        }
    ).encode()


def direct_call(client: RawSSEClient, prompt: str) -> Call:
    body = direct_body(prompt)
    key = os.environ.get(KEY_ENV, "")
    headers = {"authorization": f"Bearer {key}"} if key else {}

    async def call() -> Sample:
        s = Sample()
        t0 = time.perf_counter()
        async for data in client.events("/v1/chat/completions", body, headers):
            if data == b"[DONE]":
                continue
            choices = json.loads(data).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                s.chunks += 1
                if s.ttft_s is None:
                    s.ttft_s = time.perf_counter() - t0
        s.total_s = time.perf_counter() - t0
        return s

    return call


async def pick_prompt(port: int, min_chars: int = 700) -> str:
    """A prompt whose recorded answer (for MODEL) is long enough to stream many chunks."""
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(40):
            prompt = f"{PROMPT} ({i})" if i else PROMPT
            body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
            r = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
            r.raise_for_status()
            if len(r.json()["choices"][0]["message"]["content"] or "") >= min_chars:
                return prompt
    return PROMPT


# -- dispatcher over gRPC -----------------------------------------------------------------------
def decide_request(prompt: str, tier: str = "", request_id: str = "") -> engine_pb2.DecideRequest:
    return engine_pb2.DecideRequest(
        request_id=request_id,
        tenant="bench",
        tier=tier,
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=prompt)],
        max_output_tokens=MAX_TOKENS,
        overrides=engine_pb2.Overrides(allowed_models=[MODEL]),
    )


def execute_request(prompt: str, tier: str = "") -> dispatcher_pb2.ExecuteRequest:
    return dispatcher_pb2.ExecuteRequest(request=decide_request(prompt, tier, uuid.uuid4().hex))


def grpc_call(stubs: list[dispatcher_pb2_grpc.DispatcherStub], prompt: str, tier: str = "") -> Call:
    counter = iter(range(1 << 62))

    async def call() -> Sample:
        stub = stubs[next(counter) % len(stubs)]
        s = Sample()
        t0 = time.perf_counter()
        terminal = ""
        events = cast(
            "AsyncIterator[dispatcher_pb2.ExecuteEvent]",
            stub.Execute(execute_request(prompt, tier), timeout=120),
        )
        async for ev in events:
            kind = ev.WhichOneof("event")
            if kind == "delta":
                s.chunks += 1
                if s.ttft_s is None:
                    s.ttft_s = time.perf_counter() - t0
            elif kind in ("completed", "failed"):
                terminal = kind
                if kind == "failed":
                    name = common_pb2.ErrorClass.Name(ev.failed.error_class)
                    s.error = f"failed {name}: {ev.failed.message[:60]}"
        s.total_s = time.perf_counter() - t0
        if not terminal:
            s.error = "no terminal event"
        return s

    return call


async def run_phases(path: str, call: Call, plan: list[Load], pid: int | None) -> list[Phase]:
    await drive(call, Load(1, 5))  # warm up connections and caches
    out = []
    for load in plan:
        phase = Phase(path, load.concurrency, steady=load.steady)
        cpu0 = cpu_seconds(pid) if pid else None
        t0 = time.perf_counter()
        phase.samples = await drive(call, load)
        phase.wall_s = time.perf_counter() - t0
        if pid and cpu0 is not None:
            phase.cpu_s = cpu_seconds(pid) - cpu0
        out.append(phase)
        print(
            f"  {path:<12} c={phase.label:<7} n={load.n:<5} {phase.wall_s:6.1f}s", file=sys.stderr
        )
    return out


async def idle_memory(
    serve: Child, stubs: list[dispatcher_pb2_grpc.DispatcherStub], k: int, sim_port: int
) -> tuple[float, int, Counter[str]]:
    """RSS growth of the dispatcher per stream held open, divided by the streams the simulator
    actually holds open (it sends nothing; the batch tier's 30 s latency budget keeps the streams
    waiting). Returns (bytes per stream, streams measured, errors seen meanwhile)."""
    call = grpc_call(stubs, PROMPT, "batch")

    async def held(delay: float) -> Sample:
        await asyncio.sleep(delay)
        return await call()

    async with httpx.AsyncClient(timeout=5) as client:
        base = [asyncio.create_task(held(0)) for _ in range(10)]
        await asyncio.sleep(2.0)
        open0, rss0 = await open_streams(client, sim_port), rss_bytes(serve.pid)
        ramp = k / 100  # 100 new streams per second
        more = [asyncio.create_task(held(ramp * i / k)) for i in range(k)]
        await asyncio.sleep(ramp + 2.0)
        open1, rss1 = await open_streams(client, sim_port), rss_bytes(serve.pid)
    tasks = (*base, *more)
    errors = Counter(t.result().error for t in tasks if t.done() and t.result().error)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    n = open1 - open0
    return ((rss1 - rss0) / n if n > 0 else float("nan")), n, errors


async def child_phases(path: str, argv: list[str], env: dict[str, str]) -> list[Phase] | str:
    """Phases run by a library in its own process (JSON lines), or why there are none."""
    got = await run_captured([sys.executable, *argv], env)
    if got is None:
        return "timed out"
    rc, out, err = got
    phases = phases_from_json(path, out.decode())
    if rc != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-8:]
        return f"exit {rc}:\n" + "\n".join("    " + ln for ln in tail)
    return phases


async def _steady(port: int, prompt: str, concurrency: int, n: int) -> Load:
    """A load that keeps about ``concurrency`` streams open: arrivals at concurrency per stream
    duration (one direct stream timed first)."""
    client = RawSSEClient("127.0.0.1", port)
    try:
        s = await direct_call(client, prompt)()
    finally:
        await client.aclose()
    return Load(concurrency, n, round(n * s.total_s / concurrency, 2), steady=True)


async def main(args: argparse.Namespace) -> None:
    notes: list[str] = []
    phases: list[Phase] = []
    go_phases: list[Phase] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-execute-"))
    prompt = PROMPT
    if "main" in args.stages:
        async with simulator(args.speed) as (sim, port, cfg):
            print(f"simulator pid {sim.pid} port {port} {args.speed}x {MODEL}", file=sys.stderr)
            prompt = await pick_prompt(port)
            plan = [Load(1, args.n1), Load(100, args.n100)]
            if args.n_steady:
                plan.append(await _steady(port, prompt, 100, args.n_steady))
                notes.append(f"c=100 steady: {plan[-1].n} starts over {plan[-1].ramp_s} s")
            if not args.no_go:
                go_phases = await _go_stage(args, plan, port, cfg, prompt, tmp, notes)
            phases += await _stage(args, plan, port, cfg, prompt, tmp / "ledger.db", notes)
    # 1,000 concurrent streams: a slower simulator (bigger chunks, lower pace) so that it is not
    # the bottleneck; starts spread over 2 s, streams last ~4 s, so about 1,000 are open at once.
    if "1000" in args.stages:
        async with simulator(0.5, chunk_tokens=16) as (sim, port, cfg):
            print(f"simulator (c=1000) pid {sim.pid} port {port} 0.5x", file=sys.stderr)
            prompt = await pick_prompt(port)
            async with PeakStreams(port) as peak:
                phases += await _stage(
                    args,
                    [Load(1000, 1000, 2.0)],
                    port,
                    cfg,
                    prompt,
                    tmp / "ledger-1000.db",
                    notes,
                    peer=False,
                    tier=CAPACITY_TIER,
                )
            notes.append(f"c=1000 stage: peak open streams seen by the simulator: {peak.peak}")
    if "idle" in args.stages and not any("(gRPC): did not run" in n for n in notes):
        notes.append(await _idle(tmp, args.idle_streams))
    for db in ("ledger.db", "ledger-1000.db"):
        notes.append(f"{db}: {_ledger_note(tmp / db)}")
    if go_phases:
        print("\n== Compiled client (loadtest/goload: Go net/http and grpc-go) ==")
        report(go_phases, [])
        print("\n== Python client (RawSSEClient and grpc.aio) ==")
    report(phases, notes)


async def _go_stage(
    args: argparse.Namespace,
    plan: list[Load],
    port: int,
    cfg: Path,
    prompt: str,
    tmp: Path,
    notes: list[str],
) -> list[Phase]:
    """Direct, the dispatcher over gRPC and the raw bare relay, driven by goload."""
    binary = await bench_go.build()
    if isinstance(binary, str):
        notes.append(f"goload: did not run: {binary}")
        return []
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    decide = decide_request(prompt).SerializeToString()
    got: list[Phase] = []
    res = await bench_go.phases(
        binary, "direct", "sse", url, direct_body(prompt), plan, None, KEY_ENV
    )
    _collect(got, notes, "goload direct", res)
    try:
        async with dispatcher(cfg, tmp / "ledger-go.db", 1) as (serve, _, target):
            res = await bench_go.phases(
                binary, "dispatcher", "grpc", target, decide, plan, serve.pid
            )
            _collect(got, notes, "goload dispatcher", res)
        if "raw" in args.relays:
            async with relay(port, "raw", 1) as (proc, _, target):
                res = await bench_go.phases(
                    binary, "relay-raw", "grpc", target, decide, plan, proc.pid
                )
                _collect(got, notes, "goload relay-raw", res)
    except RuntimeError as e:
        notes.append(f"goload: a server did not start: {str(e).splitlines()[0]}")
    return got


async def _stage(
    args: argparse.Namespace,
    plan: list[Load],
    port: int,
    cfg: Path,
    prompt: str,
    ledger: Path,
    notes: list[str],
    peer: bool = True,
    tier: str = "",
) -> list[Phase]:
    """Direct, dispatcher as a library, dispatcher over gRPC and (optionally) LiteLLM."""
    phases: list[Phase] = []
    client = RawSSEClient("127.0.0.1", port)
    try:
        phases += await run_phases("direct", direct_call(client, prompt), plan, None)
    finally:
        await client.aclose()
    specs = [load.spec() for load in plan]
    lib = await child_phases(
        "dispatch-lib",
        ["-m", "loadtest.bench_inproc", str(cfg), MODEL, prompt, str(MAX_TOKENS),
         str(ledger.with_suffix(".lib.db")), tier, *specs],
        {},
    )  # fmt: skip
    _collect(phases, notes, "dispatcher as a library (dispatch-lib)", lib)
    try:
        profile = args.profile if peer else ""
        async with dispatcher(cfg, ledger, args.channels, profile) as (serve, stubs, _):
            call = grpc_call(stubs, prompt, tier)
            phases += await run_phases("dispatcher", call, plan, serve.pid)
            notes.append(
                f"dispatcher RSS after c={plan[-1].concurrency}: "
                f"{rss_bytes(serve.pid) / 2**20:.0f} MiB"
            )
    except RuntimeError as e:
        notes.append(f"dispatcher (gRPC): did not run: {str(e).splitlines()[0]}\n{_tail(e)}")
    if not peer:
        return phases
    for http in args.relays:
        try:
            async with relay(port, http, args.channels) as (proc, stubs, _):
                call = grpc_call(stubs, prompt, tier)
                phases += await run_phases(f"relay-{http}", call, plan, proc.pid)
        except RuntimeError as e:
            notes.append(f"relay ({http}): did not run: {str(e).splitlines()[0]}\n{_tail(e)}")
    if args.no_litellm:
        notes.append("litellm: skipped (--no-litellm)")
    elif importlib.util.find_spec("litellm") is None:
        notes.append("litellm: not installed (pip install -e '.[bench]')")
    else:
        got = await child_phases(
            "litellm",
            ["-m", "loadtest.bench_litellm", f"http://127.0.0.1:{port}/v1", MODEL, prompt,
             str(MAX_TOKENS), *specs],
            {"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        )  # fmt: skip
        _collect(phases, notes, "litellm", got)
    return phases


def _collect(phases: list[Phase], notes: list[str], what: str, got: list[Phase] | str) -> None:
    if isinstance(got, str):
        notes.append(f"{what}: did not run: {got}")
    else:
        phases += got


def _tail(e: BaseException) -> str:
    return "\n".join("    " + ln for ln in str(e).splitlines()[1:][-6:])


async def _idle(tmp: Path, k: int) -> str:
    """Memory per idle stream: a simulator so slow that no token comes during the measurement."""
    async with (
        simulator(0.0005) as (_, port, cfg),
        dispatcher(cfg, tmp / "idle.db") as (serve, stubs, _),
    ):
        per, n, errors = await idle_memory(serve, stubs, k, port)
    ended = ", ".join(f"{e} x{c}" for e, c in errors.most_common(3)) or "none"
    return (
        f"memory per idle stream: {per / 1024:.1f} KiB (dispatcher RSS growth over {n} streams "
        f"open at the simulator and waiting for a first token, of {k} started; "
        f"ended early: {ended})"
    )


def _ledger_note(db: Path) -> str:
    if not db.exists():
        return "ledger: no database written"
    from dispatcher.ledger.cmd import aggregate, open_readonly

    conn = open_readonly(db)
    try:
        _, total = aggregate(conn, "tenant")
    finally:
        conn.close()
    return (
        f"ledger: {total['n']} request rows, cost {total['cost_usd']:.4f} USD, router overhead "
        f"p50 {total['overhead_us_p50']} us / p99 {total['overhead_us_p99']} us"
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--n1", type=int, default=20, help="requests at concurrency 1")
    p.add_argument("--n100", type=int, default=400, help="requests at concurrency 100 (burst)")
    p.add_argument(
        "--n-steady",
        type=int,
        default=1500,
        help="requests with about 100 streams open throughout (0: skip that phase)",
    )
    p.add_argument("--no-go", action="store_true", help="skip the compiled client (goload)")
    p.add_argument(
        "--speed", type=float, default=2.0, help="simulator latency scale (2 = TTFT 175 ms)"
    )
    p.add_argument("--idle-streams", type=int, default=500)
    p.add_argument("--no-litellm", action="store_true")
    p.add_argument("--channels", type=int, default=4, help="gRPC channels to the dispatcher")
    p.add_argument(
        "--profile",
        default="",
        help="write a pyinstrument profile of the dispatcher process (main stage) to this file",
    )
    p.add_argument(
        "--relays",
        type=lambda v: [x for x in v.split(",") if x],
        default=["raw", "httpx"],
        help="bare relays to run beside the dispatcher (raw, httpx; empty for none)",
    )
    p.add_argument(
        "--stages",
        default="main,1000,idle",
        help="comma-separated: main (c=1 and 100), 1000 (no-errors check), idle (memory)",
    )
    return p.parse_args()


if __name__ == "__main__":
    with contextlib.suppress(ImportError):
        import uvloop  # every process of the bench runs uvloop, like `modelroute serve`

        uvloop.install()
    asyncio.run(main(parse_args()))
