"""``make bench-execute``: streaming straight from the provider simulator vs through the dispatcher.

One run, all on loopback, bounded in count and time:
  1. ``modelroute simulate`` (its own process) serves the same model and prompt to every client.
  2. Direct: an httpx client streams OpenAI Chat Completions from it (the floor).
  3. Dispatcher: ``modelroute serve`` (engine in-process, ledger on) in its own process; a gRPC
     client streams ``Execute`` restricted to the same model and prompt.
  4. LiteLLM's Router (library, in its own process) against the same simulator, when installed
     (``pip install -e '.[bench]'``).
At concurrency 1 and 100 (and 1,000 for the no-errors check) it prints time to first token (TTFT)
p50/p99 and the time added over direct, total time added, chunks relayed per CPU-second of the
router's process, memory per idle stream, and the ratios. It is not a test: it prints figures.
Clients share the machine with the servers, so figures at high concurrency include client time.
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
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import httpx
from grpc import aio

from loadtest.bench_procs import (
    Child,
    child_process,
    config_for_simulator,
    cpu_seconds,
    free_port,
    rss_bytes,
    wait_http,
    wait_port,
)
from loadtest.raw_sse import RawSSEClient
from loadtest.stats import pct
from modelroute.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc, engine_pb2

MODEL = "gpt-3.5-turbo-1106"  # an OpenAI-protocol model of the embedded policy
PROMPT = "Explain in a few paragraphs how a circuit breaker protects a service from a failing dependency."
MAX_TOKENS = 256
KEY_ENV = "MODELROUTE_SIMULATOR_KEY"


Call = Callable[[], Coroutine[Any, Any, "Sample"]]


@dataclass
class Sample:
    ttft_s: float | None = None
    total_s: float = 0.0
    chunks: int = 0
    error: str = ""


@dataclass
class Phase:
    path: str
    concurrency: int
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float | None = None  # CPU of the routing process during the phase

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if s.error)

    def ttft_ms(self, q: float) -> float:
        return 1000 * pct([s.ttft_s for s in self.samples if s.ttft_s is not None], q)

    def total_ms(self, q: float) -> float:
        return 1000 * pct([s.total_s for s in self.samples if not s.error], q)

    @property
    def chunks(self) -> int:
        return sum(s.chunks for s in self.samples)


async def drive(call: Call, n: int, concurrency: int) -> list[Sample]:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> Sample:
        async with sem:
            try:
                return await call()
            except (grpc.RpcError, httpx.HTTPError, OSError) as e:
                return Sample(error=type(e).__name__)

    return list(await asyncio.gather(*(one() for _ in range(n))))


# -- direct -------------------------------------------------------------------------------------
def direct_call(client: RawSSEClient, prompt: str) -> Call:
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": MAX_TOKENS,
        }
    ).encode()
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
def execute_request(prompt: str) -> dispatcher_pb2.ExecuteRequest:
    return dispatcher_pb2.ExecuteRequest(
        request=engine_pb2.DecideRequest(
            request_id=uuid.uuid4().hex,
            tenant="bench",
            messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=prompt)],
            max_output_tokens=MAX_TOKENS,
            overrides=engine_pb2.Overrides(allowed_models=[MODEL]),
        )
    )


def grpc_call(stubs: list[dispatcher_pb2_grpc.DispatcherStub], prompt: str) -> Call:
    counter = iter(range(1 << 62))

    async def call() -> Sample:
        stub = stubs[next(counter) % len(stubs)]
        s = Sample()
        t0 = time.perf_counter()
        terminal = ""
        events = cast(
            "AsyncIterator[dispatcher_pb2.ExecuteEvent]",
            stub.Execute(execute_request(prompt), timeout=120),
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
                    s.error = f"failed {ev.failed.error_class}"
        s.total_s = time.perf_counter() - t0
        if not terminal:
            s.error = "no terminal event"
        return s

    return call


async def run_phases(
    path: str,
    call: Call,
    plan: list[tuple[int, int]],
    pid: int | None,
) -> list[Phase]:
    await drive(call, 5, 1)  # warm up connections and caches
    out = []
    for concurrency, n in plan:
        phase = Phase(path, concurrency)
        cpu0 = cpu_seconds(pid) if pid else None
        t0 = time.perf_counter()
        phase.samples = await drive(call, n, concurrency)
        phase.wall_s = time.perf_counter() - t0
        if pid and cpu0 is not None:
            phase.cpu_s = cpu_seconds(pid) - cpu0
        out.append(phase)
        print(f"  {path:<10} c={concurrency:<5} n={n:<5} {phase.wall_s:6.1f}s", file=sys.stderr)
    return out


@contextlib.asynccontextmanager
async def simulator(speed: float):  # type: ignore[no-untyped-def]
    port = free_port()
    cfg = config_for_simulator(port)
    argv = ["simulate", "--port", str(port), "--speed", str(speed), "--config", str(cfg)]
    try:
        async with child_process("simulator", argv) as sim:
            await wait_http(sim, f"http://127.0.0.1:{port}/healthz")
            yield sim, port, cfg
    finally:
        cfg.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def dispatcher(cfg: Path, ledger: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    argv = ["serve", "--config", str(cfg), "--port", str(port), "--ledger", str(ledger)]
    async with child_process("dispatcher", [*argv, "--log-level", "WARNING"]) as serve:
        await wait_port(serve, port)
        channels = [aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(4)]
        try:
            yield serve, [dispatcher_pb2_grpc.DispatcherStub(ch) for ch in channels]
        finally:
            for ch in channels:
                await ch.close(None)


async def idle_memory(
    serve: Child, stubs: list[dispatcher_pb2_grpc.DispatcherStub], k: int
) -> float:
    """RSS growth of the dispatcher per stream held open (the slow simulator sends nothing)."""
    call = grpc_call(stubs, PROMPT)
    base = [asyncio.create_task(call()) for _ in range(10)]
    await asyncio.sleep(2.0)
    rss0 = rss_bytes(serve.pid)
    more = [asyncio.create_task(call()) for _ in range(k)]
    await asyncio.sleep(max(3.0, k / 200))
    rss1 = rss_bytes(serve.pid)
    for t in (*base, *more):
        t.cancel()
    await asyncio.gather(*base, *more, return_exceptions=True)
    return (rss1 - rss0) / k


async def litellm_phases(
    base_url: str, prompt: str, plan: list[tuple[int, int]]
) -> list[Phase] | str:
    """The peer's figures, or why there are none."""
    if importlib.util.find_spec("litellm") is None:
        return "litellm not installed (pip install -e '.[bench]')"
    specs = [f"{c}:{n}" for c, n in plan]
    argv = ["-m", "loadtest.bench_litellm", base_url, MODEL, prompt, str(MAX_TOKENS), *specs]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 900)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return "litellm run timed out"
    if proc.returncode != 0:
        return f"litellm run failed: {err.decode(errors='replace').strip().splitlines()[-1:]}"
    phases = []
    for line in out.decode().splitlines():
        doc = json.loads(line)
        phase = Phase("litellm", doc["concurrency"], wall_s=doc["wall_s"], cpu_s=doc["cpu_s"])
        phase.samples = [Sample(**s) for s in doc["samples"]]
        phases.append(phase)
    return phases


def _f(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None or v != v else format(v, spec)


def report(phases: list[Phase], notes: list[str]) -> None:
    direct = {p.concurrency: p for p in phases if p.path == "direct"}
    head = (
        f"{'path':<10} {'conc':>5} {'n':>5} {'err':>4} {'ttft_p50':>9} {'ttft_p99':>9} "
        f"{'+ttft_p50':>9} {'+ttft_p99':>9} {'tot_p50':>8} {'+tot_p50':>8} {'+tot_p99':>8} "
        f"{'chunks':>7} {'chunks/cpu_s':>12}"
    )
    print(
        "\nAll times in ms; '+' = added over direct at the same concurrency (difference of percentiles)."
    )
    print(head)
    print("-" * len(head))
    for p in phases:
        d = direct.get(p.concurrency)
        add = (lambda a, b: a - b) if d is not None and p.path != "direct" else (lambda a, b: None)
        cps = p.chunks / p.cpu_s if p.cpu_s else None
        print(
            f"{p.path:<10} {p.concurrency:>5} {len(p.samples):>5} {p.errors:>4} "
            f"{_f(p.ttft_ms(50)):>9} {_f(p.ttft_ms(99)):>9} "
            f"{_f(add(p.ttft_ms(50), d.ttft_ms(50)) if d else None):>9} "
            f"{_f(add(p.ttft_ms(99), d.ttft_ms(99)) if d else None):>9} "
            f"{_f(p.total_ms(50)):>8} "
            f"{_f(add(p.total_ms(50), d.total_ms(50)) if d else None):>8} "
            f"{_f(add(p.total_ms(99), d.total_ms(99)) if d else None):>8} "
            f"{p.chunks:>7} {_f(cps, '.0f'):>12}"
        )
    _ratios(phases, direct)
    for note in notes:
        print(note)


def _ratios(phases: list[Phase], direct: dict[int, Phase]) -> None:
    ours = {p.concurrency: p for p in phases if p.path == "dispatcher"}
    peer = {p.concurrency: p for p in phases if p.path == "litellm"}
    print("\nRatios")
    for c, p in sorted(ours.items()):
        d = direct.get(c)
        if d is not None:
            print(
                f"  c={c}: dispatcher/direct TTFT p50 {p.ttft_ms(50) / d.ttft_ms(50):.3f}, "
                f"p99 {p.ttft_ms(99) / d.ttft_ms(99):.3f}; total p50 "
                f"{p.total_ms(50) / d.total_ms(50):.3f}"
            )
        q = peer.get(c)
        if q is not None and d is not None and q.cpu_s and p.cpu_s:
            ours_add = p.ttft_ms(50) - d.ttft_ms(50)
            peer_add = q.ttft_ms(50) - d.ttft_ms(50)
            print(
                f"  c={c}: added TTFT p50 litellm/dispatcher {_f(peer_add / ours_add if ours_add > 0 else None)}; "
                f"chunks per CPU-s dispatcher/litellm {(p.chunks / p.cpu_s) / (q.chunks / q.cpu_s):.2f}"
            )
    c100 = ours.get(100)
    if c100 is not None and 100 in direct:
        a50 = c100.ttft_ms(50) - direct[100].ttft_ms(50)
        a99 = c100.ttft_ms(99) - direct[100].ttft_ms(99)
        verdict = "met" if a50 <= 2 and a99 <= 5 else "NOT met"
        print(
            f"  target added TTFT at c=100 (p50 <= 2 ms, p99 <= 5 ms): {verdict} ({a50:.2f} / {a99:.2f} ms)"
        )
    c1000 = ours.get(1000)
    if c1000 is not None:
        print(
            f"  1,000 concurrent streams through the dispatcher: {c1000.errors} errors of {len(c1000.samples)}"
        )


async def main(args: argparse.Namespace) -> None:
    plan = [(1, args.n1), (100, args.n100)]
    notes: list[str] = []
    phases: list[Phase] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-execute-"))
    async with simulator(args.speed) as (sim, port, cfg):
        base_url = f"http://127.0.0.1:{port}/v1"
        print(
            f"simulator pid {sim.pid} on {port}, speed {args.speed}x, model {MODEL}",
            file=sys.stderr,
        )
        prompt = await pick_prompt(port)
        client = RawSSEClient("127.0.0.1", port)
        try:
            phases += await run_phases(
                "direct", direct_call(client, prompt), [*plan, (1000, 1000)], None
            )
        finally:
            await client.aclose()
        try:
            async with dispatcher(cfg, tmp / "ledger.db") as (serve, stubs):
                ours = await run_phases(
                    "dispatcher", grpc_call(stubs, prompt), [*plan, (1000, 1000)], serve.pid
                )
                phases += ours
                notes.append(
                    f"dispatcher RSS after the run: {rss_bytes(serve.pid) / 2**20:.0f} MiB"
                )
        except RuntimeError as e:
            notes.append(f"dispatcher phases did not run: {str(e).splitlines()[0]}\n{_tail(e)}")
        peer = (
            await litellm_phases(base_url, prompt, plan)
            if not args.no_litellm
            else "skipped (--no-litellm)"
        )
        if isinstance(peer, str):
            notes.append(f"litellm: {peer}")
        else:
            phases += peer
    if not any(n.startswith("dispatcher phases did not run") for n in notes):
        notes.append(await _idle(tmp, args.idle_streams))
    notes.append(_ledger_note(tmp / "ledger.db"))
    report(phases, notes)


def _tail(e: BaseException) -> str:
    return "\n".join("    " + ln for ln in str(e).splitlines()[1:][-6:])


async def _idle(tmp: Path, k: int) -> str:
    """Memory per idle stream: a simulator so slow that no token comes during the measurement."""
    async with (
        simulator(0.0005) as (_, port, cfg),
        dispatcher(cfg, tmp / "idle.db") as (serve, stubs),
    ):
        per = await idle_memory(serve, stubs, k)
        async with httpx.AsyncClient() as c:
            open_streams = (
                (await c.get(f"http://127.0.0.1:{port}/stats")).json().get("open_streams")
            )
    return (
        f"memory per idle stream (dispatcher RSS growth / {k} streams waiting for a first token; "
        f"simulator saw {open_streams} open): {per / 1024:.1f} KiB"
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
    p.add_argument("--n1", type=int, default=40, help="requests at concurrency 1")
    p.add_argument("--n100", type=int, default=600, help="requests at concurrency 100")
    p.add_argument("--speed", type=float, default=10.0, help="simulator latency scale")
    p.add_argument("--idle-streams", type=int, default=500)
    p.add_argument("--no-litellm", action="store_true")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
