"""Process helpers for the execute benchmark: child processes, free ports, CPU and memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from grpc import aio

from modelroute.v1 import dispatcher_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "config" / "modelroute.toml"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# The c=1000 capacity check runs on this tier: like "standard", but a 10 s latency budget, so a
# TTFT deadline does not turn a saturated 2-core machine into errors (capacity, not policy).
BENCH_TIER = """
[tiers.bench-capacity]
latency_sla_ms = 10000
total_deadline_ms = 120000
max_cost_usd = 0.10
cost_weight = 1.0
streaming_mode = "restart"
chain = "default"
max_hops = 3
"""


def config_for_simulator(sim_port: int) -> Path:
    """A copy of the embedded policy whose providers point at a simulator on ``sim_port``, plus
    the ``bench-capacity`` tier."""
    text = DEFAULT_CONFIG.read_text().replace("127.0.0.1:8090", f"127.0.0.1:{sim_port}")
    text += BENCH_TIER
    fd, name = tempfile.mkstemp(prefix="modelroute-bench-", suffix=".toml")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return Path(name)


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.asynccontextmanager
async def child_process(
    name: str, argv: Sequence[str], code: str = "from modelroute.cli import main; main()"
) -> AsyncIterator[Child]:
    """Run ``python -c CODE argv`` (default: the modelroute CLI) with output to a temp log;
    SIGTERM on exit."""
    fd, log_name = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, *argv, cwd=REPO, stdout=log, stderr=log
        )
    child = Child(name, proc, Path(log_name))
    try:
        yield child
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.to_thread(Path(log_name).unlink, missing_ok=True)


async def wait_http(child: Child, url: str, timeout_s: float = 60.0) -> None:
    """Wait until ``url`` answers 200 (or the child dies)."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        for _ in range(int(timeout_s / 0.1)):
            if child.proc.returncode is not None:
                raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} not ready at {url}:\n{child.log_tail()}")


async def wait_port(child: Child, port: int, timeout_s: float = 60.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if child.proc.returncode is not None:
            raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"{child.name} not listening on {port}:\n{child.log_tail()}")


# `--profile FILE`: the dispatcher process runs under pyinstrument (the `bench` extra) and
# writes its call tree to FILE when it stops.
PROFILED_SERVE = """
import sys
from pyinstrument import Profiler
from modelroute.cli import main
out = sys.argv.pop(1)
p = Profiler(interval=0.001, async_mode="disabled")
p.start()
try:
    main()
finally:
    p.stop()
    with open(out, "w") as fh:
        fh.write(p.output_text(unicode=False, show_all=False))
"""


SIM_CODE = """
import asyncio, contextlib, sys
from dispatcher.simulator import Simulator
from modelroute.config import load_config

async def main(cfg, port, speed, chunk_tokens):
    sim = Simulator(config=load_config(cfg), speed=speed, chunk_tokens=chunk_tokens)
    await sim.start("127.0.0.1", port)
    await sim.ensure_loaded()
    await asyncio.Event().wait()

with contextlib.suppress(ImportError):
    import uvloop
    uvloop.install()
asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
"""


@contextlib.asynccontextmanager
async def simulator(speed: float, chunk_tokens: int = 4):  # type: ignore[no-untyped-def]
    """The provider simulator in its own process (with uvloop, like ``modelroute simulate``)."""
    port = free_port()
    cfg = config_for_simulator(port)
    argv = [str(cfg), str(port), str(speed), str(chunk_tokens)]
    try:
        async with child_process("simulator", argv, SIM_CODE) as sim:
            await wait_http(sim, f"http://127.0.0.1:{port}/healthz")
            yield sim, port, cfg
    finally:
        cfg.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def dispatcher(  # type: ignore[no-untyped-def]
    cfg: Path, ledger: Path, n_channels: int = 4, profile: str = ""
):
    port = free_port()
    argv = ["serve", "--config", str(cfg), "--port", str(port), "--ledger", str(ledger)]
    argv += ["--log-level", "WARNING"]
    if profile:
        child = child_process("dispatcher", [profile, *argv], PROFILED_SERVE)
    else:
        child = child_process("dispatcher", argv)
    async with child as serve:
        await wait_port(serve, port)
        async with dispatcher_stubs(port, n_channels) as stubs:
            yield serve, stubs, f"127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def dispatcher_stubs(
    port: int, n_channels: int
) -> AsyncIterator[list[dispatcher_pb2_grpc.DispatcherStub]]:
    """Dispatcher stubs over ``n_channels`` channels to ``127.0.0.1:port``, closed on exit."""
    channels = [aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(n_channels)]
    try:
        yield [dispatcher_pb2_grpc.DispatcherStub(ch) for ch in channels]
    finally:
        for ch in channels:
            await ch.close(None)


async def run_captured(
    argv: Sequence[str], env: dict[str, str] | None = None, timeout_s: float = 900
) -> tuple[int, bytes, bytes] | None:
    """Run a command to its end: (exit code, stdout, stderr), or None when it timed out."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    return proc.returncode or 0, out, err


async def open_streams(client: httpx.AsyncClient, sim_port: int) -> int:
    got = (await client.get(f"http://127.0.0.1:{sim_port}/stats")).json()
    return int(got.get("open_streams", 0))


class PeakStreams:
    """Polls the simulator's open stream count while a stage runs."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/stats"
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    got = (await client.get(self.url)).json().get("open_streams", 0)
                    self.peak = max(self.peak, int(got))
                await asyncio.sleep(0.2)

    async def __aenter__(self) -> PeakStreams:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
