"""``make bench-decide``: Decide against a bare grpc.aio echo floor, in one run.

Server processes: a bare echo server answering with a Decision-sized message,
``modelroute serve --only engine`` on the embedded default policy, and the same engine with the
``[engine]`` settings of ``VARIANTS``: ``native_decide = false`` (every request on the Python
path instead of the native one, ``engine.fastpath``) and ``linear_kernel = "onnxruntime"`` (the
Python path with its fast-path models run by onnxruntime instead of the native kernel). The same
client drives them all with the same real prompts from ../shared/data, at concurrency 1 and 32,
interleaved in rounds (see ``_throughput``). Prints client-side p50/p99 and throughput with the
ratios to echo, the engine's server-side decision time by prompt length, and the engine's
resident memory. ``--skip ROW`` leaves a variant row out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc import aio

from loadtest.prompts import prompts_by_length
from loadtest.stats import pct
from modelroute.v1 import engine_pb2, engine_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
METHOD = "/modelroute.v1.RoutingEngine/Decide"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _wait_ready(target: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with aio.insecure_channel(target) as ch:
                await asyncio.wait_for(ch.channel_ready(), 1.0)
                return
        except (TimeoutError, grpc.RpcError):
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server at {target} did not start")


def _start(cmd: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


async def _drive(
    target: str, method: str, reqs: list[engine_pb2.DecideRequest], concurrency: int, seconds: float
) -> tuple[list[float], list[int], float]:
    """Run for ``seconds``; return client latencies (ms), server decision times (us), elapsed s."""
    lat: list[float] = []
    server_us: list[int] = []
    async with aio.insecure_channel(target) as ch:
        call = ch.unary_unary(
            method,
            request_serializer=engine_pb2.DecideRequest.SerializeToString,
            response_deserializer=engine_pb2.Decision.FromString,
        )
        for r in reqs[:20]:  # warm-up
            await call(r)
        stop_at = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                resp = await call(reqs[i % len(reqs)])
                lat.append((time.perf_counter() - t0) * 1000)
                server_us.append(resp.decision_time_us)
                i += concurrency

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return lat, server_us, elapsed


async def _one(target: str, req: engine_pb2.DecideRequest) -> engine_pb2.Decision:
    async with aio.insecure_channel(target) as ch:
        return await engine_pb2_grpc.RoutingEngineStub(ch).Decide(req)


async def _decision_times(target: str, reqs: list[engine_pb2.DecideRequest], n: int) -> list[int]:
    async with aio.insecure_channel(target) as ch:
        call = ch.unary_unary(
            METHOD,
            request_serializer=engine_pb2.DecideRequest.SerializeToString,
            response_deserializer=engine_pb2.Decision.FromString,
        )
        out = []
        for i in range(n):
            out.append((await call(reqs[i % len(reqs)])).decision_time_us)
        return out


def _request(text: str, i: int) -> engine_pb2.DecideRequest:
    r = engine_pb2.DecideRequest(request_id=f"bench-{i}", tenant="demo", tier="premium")
    r.messages.add(role=2, content=text)
    return r


ORT_ROW = "engine (ort)"
PYTHON_ROW = "engine (python)"
# Engine rows beside the default one: the [engine] settings each runs with.
VARIANTS = {
    PYTHON_ROW: "native_decide = false",
    ORT_ROW: 'linear_kernel = "onnxruntime"',
}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _run_target(
    target: str, name: str, pid: int, reqs: list[engine_pb2.DecideRequest], conc: int, s: float
) -> tuple[list[float], float, float]:
    """Latencies (ms), elapsed s and the server's CPU seconds of one drive."""
    method = "/bench.Echo/Decide" if name == "echo" else METHOD
    cpu0 = _cpu_s(pid)
    lat, _, el = await _drive(target, method, reqs, conc, s)
    return lat, el, _cpu_s(pid) - cpu0


async def _paired_c1(
    targets: dict[str, tuple[str, int]],
    reqs: list[engine_pb2.DecideRequest],
    seconds: float,
    block: int = 100,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Concurrency 1, in short alternating blocks: one client sends ``block`` calls to one target
    (one call in flight), then the same prompts to the next target, and so on for ``seconds``
    (the first target of each block rotating). Each target runs alone within its block, as it
    would at concurrency 1, while a drift in the shared machine's speed (seconds long) lands on
    all of them alike. Channels stay open throughout. Returns the latencies (ms) per target and
    each server's CPU seconds per call."""
    channels = {n: aio.insecure_channel(t) for n, (t, _) in targets.items()}
    calls = {
        n: ch.unary_unary(
            "/bench.Echo/Decide" if n == "echo" else METHOD,
            request_serializer=engine_pb2.DecideRequest.SerializeToString,
            response_deserializer=engine_pb2.Decision.FromString,
        )
        for n, ch in channels.items()
    }
    names = list(targets)
    lat: dict[str, list[float]] = {n: [] for n in names}
    try:
        for r in reqs[:20]:  # warm-up
            for n in names:
                await calls[n](r)
        cpu0 = {n: _cpu_s(pid) for n, (_, pid) in targets.items()}
        stop_at = time.perf_counter() + seconds
        b = 0
        while time.perf_counter() < stop_at:
            chunk = [reqs[(b * block + j) % len(reqs)] for j in range(block)]
            for k in range(len(names)):
                n = names[(b + k) % len(names)]
                call, out = calls[n], lat[n]
                for req in chunk:
                    t0 = time.perf_counter()
                    await call(req)
                    out.append((time.perf_counter() - t0) * 1000)
            b += 1
        cpu = {n: (_cpu_s(pid) - cpu0[n]) / max(1, len(lat[n])) for n, (_, pid) in targets.items()}
    finally:
        for ch in channels.values():
            await ch.close(None)
    return lat, cpu


async def _throughput(
    targets: dict[str, tuple[str, int]],
    reqs: list[engine_pb2.DecideRequest],
    seconds: float,
    rounds: int,
) -> None:
    """``targets``: row name -> (address, server pid); "echo" first, then the engines.

    Concurrency 1 runs in short alternating blocks (``_paired_c1``): its ratio is the one most
    exposed to the shared machine's drift, as one call's latency is a few hundred microseconds. Concurrency 32
    runs ``rounds`` rounds, every target once per round for ``seconds / rounds`` (the loads cannot
    overlap): interleaving keeps a drift from landing on one target only. The table gives each
    server's CPU time per call, read from /proc; the ratios are printed pooled and per part
    (c=1: the run cut in ``rounds`` equal parts; c=32: per round)."""
    print(
        f"prompts: {len(reqs)} real prompts of ~100 tokens; c=1: {seconds * len(targets):.0f} s, "
        f"blocks of 100 calls per target in turn; c=32: {seconds:.0f} s per target in "
        f"{rounds} interleaved rounds\n"
    )
    print(f"{'':>14} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'srv us/call':>12}")
    rows = {}
    by_round: dict[tuple[str, int], list[tuple[float, float]]] = {}
    lat1, cpu1 = await _paired_c1(targets, reqs, seconds * len(targets))
    for name in targets:
        lat = lat1[name]
        rows[(name, 1)] = (pct(lat, 50), pct(lat, 99), 0.0)
        part = max(1, len(lat) // rounds)
        for j in range(rounds):
            by_round.setdefault((name, 1), []).append(
                (pct(lat[j * part : (j + 1) * part], 50), 0.0)
            )
        print(f"{name:>14} {1:>4} {rows[(name, 1)][0]:>8.3f} {rows[(name, 1)][1]:>8.3f} "
              f"{'-':>8} {cpu1[name] * 1e6:>12.0f}")  # fmt: skip
    conc = 32
    lats: dict[str, list[float]] = {n: [] for n in targets}
    spent = dict.fromkeys(targets, 0.0)
    cpu = dict.fromkeys(targets, 0.0)
    for _ in range(rounds):
        for name, (target, pid) in targets.items():
            lat, el, used = await _run_target(target, name, pid, reqs, conc, seconds / rounds)
            lats[name] += lat
            spent[name] += el
            cpu[name] += used
            by_round.setdefault((name, conc), []).append((pct(lat, 50), len(lat) / el))
    for name in targets:
        n = len(lats[name])
        rows[(name, conc)] = (pct(lats[name], 50), pct(lats[name], 99), n / spent[name])
        p50, p99, rps = rows[(name, conc)]
        us = cpu[name] / n * 1e6
        print(f"{name:>14} {conc:>4} {p50:>8.3f} {p99:>8.3f} {rps:>8.0f} {us:>12.0f}")
    print()
    for name in (n for n in targets if n != "echo"):
        _print_ratios(name, rows, by_round)


def _print_ratios(
    name: str,
    rows: dict[tuple[str, int], tuple[float, float, float]],
    by_round: dict[tuple[str, int], list[tuple[float, float]]],
) -> None:
    g1, e1 = rows[(name, 1)], rows[("echo", 1)]
    g32, e32 = rows[(name, 32)], rows[("echo", 32)]
    r1 = [g[0] / e[0] for g, e in zip(by_round[(name, 1)], by_round[("echo", 1)], strict=True)]
    r32 = [g[1] / e[1] for g, e in zip(by_round[(name, 32)], by_round[("echo", 32)], strict=True)]
    print(
        f"ratio {name}/echo p50 at concurrency 1: {g1[0] / e1[0]:.2f}x (target <= 1.3x;"
        f" alternating blocks; per part {', '.join(f'{r:.2f}' for r in r1)})"
    )
    print(
        f"ratio {name}/echo throughput at concurrency 32: {g32[2] / e32[2]:.2f}"
        f" (target >= 0.70; per round {', '.join(f'{r:.2f}' for r in r32)})"
    )


async def _decision_time_by_length(engine: str, by_len: dict[int, list[str]], n: int) -> None:
    print("\nserver-side decision time (Decision.decision_time_us), sequential:")
    for size, texts in by_len.items():
        reqs = [_request(t, i) for i, t in enumerate(texts)]
        us = await _decision_times(engine, reqs, n)
        target = "1 ms" if size <= 2000 else "3 ms"
        print(
            f"  ~{size:>5} tokens: p50 {pct(us, 50) / 1000:.3f} ms  p99 {pct(us, 99) / 1000:.3f} ms"
            f"  (n={len(us)}, target p99 <= {target})"
        )


def _variant_config(engine_settings: str) -> str:
    """The embedded default policy with these ``[engine]`` settings."""
    from modelroute.config import DEFAULT_CONFIG_PATH

    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)  # noqa: SIM115
    f.write(text + f"\n[engine]\n{engine_settings}\n")
    f.close()
    return f.name


async def main_async(args: argparse.Namespace) -> None:
    by_len = prompts_by_length(Path(args.data))
    mixed = [_request(t, i) for i, t in enumerate(by_len[100])]
    eport, gport = _free_port(), _free_port()
    echo_target, engine_target = f"127.0.0.1:{eport}", f"127.0.0.1:{gport}"
    py = sys.executable
    serve = [py, "-m", "modelroute", "serve", "--only", "engine", "--log-level", "WARNING"]
    engine = _start([*serve, "--port", str(gport)])
    echo: subprocess.Popen[bytes] | None = None
    variants: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    for row, settings in VARIANTS.items():
        if row in args.skip:
            continue
        port = _free_port()
        cmd = [*serve, "--port", str(port), "--config", _variant_config(settings)]
        variants[row] = (f"127.0.0.1:{port}", _start(cmd))
    try:
        for target in [engine_target, *(t for t, _ in variants.values())]:
            await _wait_ready(target)
        # The echo floor answers with a real Decision, so both servers send the same sizes.
        reply = tempfile.NamedTemporaryFile(suffix=".bin", delete=False)  # noqa: SIM115
        reply.write((await _one(engine_target, mixed[0])).SerializeToString())
        reply.close()
        echo = _start(
            [py, "-m", "loadtest.echo_server", "--port", str(eport), "--reply-file", reply.name]
        )
        await _wait_ready(echo_target)
        targets = {"echo": (echo_target, echo.pid), "engine": (engine_target, engine.pid)}
        for row, (target, proc) in variants.items():
            targets[row] = (target, proc.pid)
        await _throughput(targets, mixed, args.seconds, args.rounds)
        await _decision_time_by_length(engine_target, by_len, args.decisions)
        print(f"\nengine resident memory: {_rss_mb(engine.pid):.0f} MB (target <= 300 MB)")
    finally:
        for p in (engine, echo, *(proc for _, proc in variants.values())):
            if p is not None:
                p.terminate()
                p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--seconds", type=float, default=12.0, help="seconds per target and concurrency"
    )
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds per concurrency")
    ap.add_argument("--decisions", type=int, default=400, help="Decide calls per prompt length")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=list(VARIANTS),
        help="leave out an engine row (repeatable)",
    )
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
