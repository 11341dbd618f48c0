"""Two checkouts of the dispatcher, measured in turn against one simulator: an A/B comparison.

The shared machine's speed drifts by 2x within minutes, so two versions measured in separate
``make bench-execute`` runs cannot be compared. This runs the dispatcher of each work tree (its
own ``.venv``, its own code) in alternating rounds, with direct rows of the same round as the
reference, and prints per round and as medians: the dispatcher's CPU per provider chunk and the
added time to first token (p50, p99) at each load.

``python -m loadtest.bench_ab --trees /path/base,/path/new [--rounds 4] [--client go|py]``

Each tree needs ``make setup`` done. The order of the trees rotates from round to round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from loadtest import bench_go
from loadtest.bench_execute import (
    KEY_ENV,
    _steady,
    decide_request,
    direct_body,
    direct_call,
    grpc_call,
    pick_prompt,
    run_phases,
)
from loadtest.bench_procs import (
    Child,
    dispatcher_stubs,
    free_port,
    simulator,
    wait_port,
)
from loadtest.bench_report import Load, Phase
from loadtest.raw_sse import RawSSEClient
from modelroute.v1 import dispatcher_pb2_grpc

SERVE = "from modelroute.cli import main; main()"


@contextlib.asynccontextmanager
async def tree_dispatcher(
    tree: Path, cfg: Path, ledger: Path, n_channels: int
) -> AsyncIterator[tuple[Child, list[dispatcher_pb2_grpc.DispatcherStub], str]]:
    """``modelroute serve`` of the checkout ``tree`` (its venv's Python, run from the tree)."""
    port = free_port()
    argv = ["serve", "--config", str(cfg), "--port", str(port), "--ledger", str(ledger)]
    fd, log_name = tempfile.mkstemp(prefix="bench-ab-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(tree / ".venv" / "bin" / "python"), "-c", SERVE, *argv, "--log-level", "WARNING",
            cwd=tree, stdout=log, stderr=log,
        )  # fmt: skip
    child = Child(tree.name, proc, Path(log_name))
    try:
        await wait_port(child, port)
        async with dispatcher_stubs(port, n_channels) as stubs:
            yield child, stubs, f"127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        await asyncio.to_thread(Path(log_name).unlink, missing_ok=True)


_recorded: dict[str, int] = {}  # profiles written per tree name
PY_SPY = "py-spy record --pid {pid} --native --rate 200 --format raw --output {out} --threads"


async def _recorder(
    args: argparse.Namespace, pid: int, name: str
) -> asyncio.subprocess.Process | None:
    """A profiler (``--record-cmd``, py-spy by default) attached to ``pid``, writing into
    ``--record DIR``; stopped with SIGINT when the dispatcher's phases are done."""
    if not args.record:
        return None
    _recorded[name] = n = _recorded.get(name, -1) + 1
    out = Path(args.record) / f"{name}-{n}.txt"
    cmd = args.record_cmd.format(pid=pid, out=out).split()
    return await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


def _added(p: Phase, d: Phase, q: float) -> float:
    return p.ttft_ms(q) - d.ttft_ms(q)


async def one_round(
    args: argparse.Namespace,
    trees: list[Path],
    plan: list[Load],
    port: int,
    cfg: Path,
    prompt: str,
    tmp: Path,
) -> dict[str, list[Phase]]:
    """Direct, then the dispatcher of each tree, with the same plan and client."""
    got: dict[str, list[Phase]] = {}
    binary = await bench_go.build() if args.client == "go" else None
    if isinstance(binary, str):
        raise SystemExit(f"goload: {binary}")
    if binary is not None:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        res = await bench_go.phases(
            binary, "direct", "sse", url, direct_body(prompt), plan, None, KEY_ENV
        )
    else:
        client = RawSSEClient("127.0.0.1", port)
        try:
            res = await run_phases("direct", direct_call(client, prompt), plan, None)
        finally:
            await client.aclose()
    if isinstance(res, str):
        raise SystemExit(f"direct: {res}")
    got["direct"] = res
    for tree in trees:
        async with tree_dispatcher(tree, cfg, tmp / f"{tree.name}.db", 4) as (serve, stubs, tgt):
            spy = await _recorder(args, serve.pid, tree.name)
            if binary is not None:
                decide = decide_request(prompt).SerializeToString()
                res = await bench_go.phases(binary, tree.name, "grpc", tgt, decide, plan, serve.pid)
            else:
                res = await run_phases(tree.name, grpc_call(stubs, prompt), plan, serve.pid)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await spy.wait()
        if isinstance(res, str):
            raise SystemExit(f"{tree}: {res}")
        got[str(tree)] = res
    return got


def summarize(trees: list[Path], rounds: list[dict[str, list[Phase]]]) -> None:
    """Per load: each tree's CPU per chunk and added TTFT per round, then the medians."""
    n_loads = len(rounds[0]["direct"])
    for i in range(n_loads):
        d0 = rounds[0]["direct"][i]
        print(f"\n== load c={d0.label} n={len(d0.samples)} ==")
        print(f"{'tree':<28} {'round':>5} {'cpu_s':>7} {'us/chunk':>9} {'+p50':>7} {'+p99':>7} err")
        for tree in trees:
            cpu, p50, p99 = [], [], []
            for r, got in enumerate(rounds):
                d, p = got["direct"][i], got[str(tree)][i]
                relayed = p.relayed(d)
                us = 1e6 * (p.cpu_s or 0) / relayed if relayed else float("nan")
                a50, a99 = _added(p, d, 50), _added(p, d, 99)
                cpu.append(us)
                p50.append(a50)
                p99.append(a99)
                print(
                    f"{str(tree)[-28:]:<28} {r:>5} {p.cpu_s or 0:>7.2f} {us:>9.1f} "
                    f"{a50:>7.2f} {a99:>7.2f} {p.errors}"
                )
            print(
                f"{'  median':<28} {'':>5} {'':>7} {statistics.median(cpu):>9.1f} "
                f"{statistics.median(p50):>7.2f} {statistics.median(p99):>7.2f}"
            )


async def main(args: argparse.Namespace, trees: list[Path]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    rounds: list[dict[str, list[Phase]]] = []
    async with simulator(args.speed) as (_, port, cfg):
        prompt = await pick_prompt(port)
        plan = []
        if args.n1:
            plan.append(Load(1, args.n1))
        if args.n100:
            plan.append(Load(100, args.n100))
        plan.append(await _steady(port, prompt, 100, args.n_steady))
        for r in range(args.rounds):
            order = trees[r % len(trees) :] + trees[: r % len(trees)]
            print(f"round {r}: {' then '.join(t.name for t in order)}", file=sys.stderr)
            rounds.append(await one_round(args, order, plan, port, cfg, prompt, tmp))
    summarize(trees, rounds)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--trees", required=True, help="comma-separated checkouts (each made)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--client", choices=("go", "py"), default="go")
    p.add_argument("--n1", type=int, default=0, help="requests at concurrency 1 (0: skip)")
    p.add_argument("--n100", type=int, default=0, help="requests at c=100 burst (0: skip)")
    p.add_argument("--n-steady", type=int, default=1500)
    p.add_argument("--speed", type=float, default=2.0)
    p.add_argument("--record", default="", help="directory: profile each dispatcher into it")
    p.add_argument("--record-cmd", default=PY_SPY, help="profiler command ({pid}, {out})")
    return p.parse_args()


if __name__ == "__main__":
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    ns = parse_args()
    asyncio.run(main(ns, [Path(t).resolve() for t in ns.trees.split(",")]))
