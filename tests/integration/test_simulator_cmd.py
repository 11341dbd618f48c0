"""``modelroute simulate`` as a process: the ready line, health, and a clean stop on SIGINT."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


async def test_simulate_command_serves_until_interrupted(shared_data: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modelroute",
        "simulate",
        "--port",
        "0",
        "--speed",
        "1000",
        "--data",
        str(shared_data),
        "--fault",
        "rate_limit=1.0",
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "MODELROUTE_SIMULATOR_KEY": "cli-secret"},
    )
    assert proc.stderr is not None
    try:
        match = None
        while match is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "simulate exited before it was ready"
            match = re.search(r"ready on (http://127\.0\.0\.1:\d+)", line)
        root = match.group(1)
        async with httpx.AsyncClient() as h:
            health = await h.get(f"{root}/healthz")
            body = {
                "model": "claude-v1",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            }
            no_key = await h.post(f"{root}/anthropic/v1/messages", json=body)
            limited = await h.post(
                f"{root}/anthropic/v1/messages", json=body, headers={"x-api-key": "cli-secret"}
            )
        assert health.json() == {"status": "ok"}
        assert no_key.status_code == 401
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(proc.stderr.read(), 30)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
    assert b"cli-secret" not in rest
    assert b"Traceback" not in rest


async def test_simulate_command_rejects_a_bad_fault_spec() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modelroute",
        "simulate",
        "--fault",
        "explode=0.5",
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"--fault" in err
