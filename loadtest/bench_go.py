"""The compiled load generator (``loadtest/goload``) in ``make bench-execute``.

The Python client of the other rows pays for gRPC framing and protobuf decoding in Python on the
gRPC paths, but only for a minimal HTTP/1.1 reader on the direct path, and it shares the two
cores with the servers: part of what those rows call "added" is the client's. ``goload``
(Go: ``net/http`` straight from the simulator, ``grpc-go`` with a pass-through codec for
``Dispatcher.Execute``) costs little on both sides, so the difference of its direct and gRPC
rows is closer to what the routing process adds. It is built on first use into ``.tools/``
(``go build``; modules from the Go module proxy).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from loadtest.bench_procs import REPO, run_captured
from loadtest.bench_report import Load, Phase, phases_from_json

SOURCE = REPO / "loadtest" / "goload"
BINARY = REPO / ".tools" / "goload"


async def build() -> Path | str:
    """The goload binary (rebuilt when a source file is newer), or why there is none."""
    go = shutil.which("go")
    if go is None:
        return "go is not installed"
    sources = [*SOURCE.glob("*.go"), SOURCE / "go.mod", SOURCE / "go.sum"]
    newest = max(p.stat().st_mtime for p in sources if p.exists())
    if BINARY.exists() and BINARY.stat().st_mtime >= newest:
        return BINARY
    BINARY.parent.mkdir(exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        go, "build", "-o", str(BINARY), ".", cwd=SOURCE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        return "go build failed: " + out.decode(errors="replace").strip()[-400:]
    return BINARY


async def phases(
    binary: Path,
    path: str,
    mode: str,
    target: str,
    body: bytes,
    plan: list[Load],
    pid: int | None,
    key_env: str = "",
) -> list[Phase] | str:
    """Run ``plan`` with goload (``mode`` sse or grpc) against ``target``; the phases (CPU of
    process ``pid``) or why there are none."""
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(body)
    argv = [
        str(binary), "-mode", mode, "-target", target, "-body", f.name,
        "-phases", ",".join(load.spec() for load in plan), "-pid", str(pid or 0),
    ]  # fmt: skip
    if key_env:
        argv += ["-key-env", key_env]
    try:
        got = await run_captured(argv)
    finally:
        os.unlink(f.name)
    if got is None:
        return "timed out"
    rc, out, err = got
    if rc != 0:
        return f"exit {rc}: {err.decode(errors='replace').strip()[-300:]}"
    return phases_from_json(path, out.decode())
