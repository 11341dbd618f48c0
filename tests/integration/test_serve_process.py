"""``modelroute serve`` as a real process: one ready line, and SIGTERM lets an in-flight stream
finish (its terminal event arrives, the ledger row is flushed) before the process exits."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

from grpc import aio

from modelroute.config import DEFAULT_CONFIG_PATH
from modelroute.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start_serve(tmp_path: Path) -> tuple[asyncio.subprocess.Process, int, Path]:
    sim_port, port = _free_port(), _free_port()
    cfg = tmp_path / "policy.toml"
    cfg.write_text(
        DEFAULT_CONFIG_PATH.read_text().replace("127.0.0.1:8090", f"127.0.0.1:{sim_port}")
    )
    ledger = tmp_path / "ledger.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelroute", "serve", "--config", str(cfg), "--port", str(port),
        "--simulator", "--simulator-port", str(sim_port), "--ledger", str(ledger), "--grace-s", "20",
        cwd=REPO, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line, "serve exited before it was ready"
        if "modelroute ready on" in line:
            break
    return proc, port, ledger


def _slow_request() -> dispatcher_pb2.ExecuteRequest:
    req = dispatcher_pb2.ExecuteRequest()
    r = req.request
    r.request_id = "sigterm-1"
    r.tier = "standard"
    # A recorded prompt whose replayed answer is long, on one pinned model.
    r.messages.add(
        role=common_pb2.ROLE_USER,
        content="Write a function to remove all elements from a given list present in another list.",
    )
    r.overrides.allowed_models.append("gpt-4-1106-preview")
    r.max_output_tokens = 120
    # ~2-4 s of streaming from the built-in simulator.
    r.metadata["x-sim-ttft-ms"] = "50"
    r.metadata["x-sim-tokens-per-s"] = "40"
    return req


async def test_sigterm_lets_the_in_flight_stream_finish(tmp_path: Path) -> None:
    proc, port, ledger = await _start_serve(tmp_path)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stream = dispatcher_pb2_grpc.DispatcherStub(ch).Execute(_slow_request())
            kinds: list[str] = []
            async for ev in stream:
                kinds.append(ev.WhichOneof("event") or "")
                if kinds.count("delta") == 2:
                    proc.send_signal(signal.SIGTERM)
        assert kinds[-1] == "completed", kinds
        assert kinds.count("delta") > 2
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT outcome FROM requests WHERE request_id = 'sigterm-1'").fetchall()
    assert rows == [("completed",)]


async def test_new_calls_are_refused_after_sigterm(tmp_path: Path) -> None:
    proc, port, _ = await _start_serve(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        async with aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            try:
                await asyncio.wait_for(ch.channel_ready(), 1.0)
                connected = True
            except TimeoutError:
                connected = False
        assert not connected
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
