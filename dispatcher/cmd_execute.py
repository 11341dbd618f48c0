"""``modelroute execute "text"``: stream one prompt through the dispatcher to the terminal.

The answer goes to stdout as it streams; attempts, resets and the outcome go to stderr. With
``--target HOST:PORT`` it calls a running ``modelroute serve``; without, it runs the engine and
the dispatcher in this process (``--simulator`` also starts the provider simulator here and
points the policy's providers at it). Exit status: 0 completed, 1 failed, 2 refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from grpc import aio

from modelroute.config import DEFAULT_CONFIG_PATH
from modelroute.errors import ConfigError
from modelroute.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc, engine_pb2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", help="the prompt (one user message)")
    p.add_argument("--target", help="HOST:PORT of a running dispatcher (default: in-process)")
    p.add_argument("--config", help="policy file for in-process mode (default: embedded)")
    p.add_argument("--simulator", action="store_true", help="in-process: run the simulator too")
    p.add_argument("--tier", default="")
    p.add_argument("--tenant", default="")
    p.add_argument("--max-output-tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--quiet", action="store_true", help="print only the answer and the outcome")


def build_request(args: argparse.Namespace) -> dispatcher_pb2.ExecuteRequest:
    req = engine_pb2.DecideRequest(
        request_id=uuid.uuid4().hex,
        tenant=args.tenant,
        tier=args.tier,
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=args.text)],
    )
    if args.max_output_tokens is not None:
        req.max_output_tokens = args.max_output_tokens
    params = dispatcher_pb2.GenerationParams()
    if args.temperature is not None:
        params.temperature = args.temperature
    return dispatcher_pb2.ExecuteRequest(request=req, params=params)


def _name(m: common_pb2.ModelRef) -> str:
    return f"{m.provider}/{m.name}"


def render(ev: dispatcher_pb2.ExecuteEvent, quiet: bool) -> int | None:
    """Print one event; returns the exit status once the terminal event arrives."""
    kind = ev.WhichOneof("event")
    err = sys.stderr
    if kind == "delta":
        sys.stdout.write(ev.delta.text)
        sys.stdout.flush()
    elif kind == "decision" and not quiet:
        print(f"[plan {ev.decision.reason}]", file=err)
    elif kind == "attempt_started" and not quiet:
        a = ev.attempt_started
        hedge = " (hedge)" if a.hedge else ""
        print(f"[attempt {a.attempt}: hop {a.hop} {_name(a.model)}{hedge}]", file=err)
    elif kind == "attempt_failed" and not quiet:
        f = ev.attempt_failed
        cls = common_pb2.ErrorClass.Name(f.error_class)
        nxt = common_pb2.Action.Name(f.next)
        print(f"[attempt {f.attempt} failed: {cls} {f.message}; next {nxt}]", file=err)
    elif kind == "reset":
        print(f"\n[reset: discard the {ev.reset.discarded_chars} characters above]", file=err)
    elif kind == "escalated" and not quiet:
        e = ev.escalated
        print(
            f"[escalated: attempt {e.attempt} ({_name(e.model)}) confidence {e.confidence:.2f} "
            f"< {e.threshold:.2f}; its answer was held back and is discarded]",
            file=err,
        )
    elif kind == "completed":
        c = ev.completed
        u = c.usage
        print(
            f"\n[completed by {_name(c.model)}: {dispatcher_pb2.FinishReason.Name(c.finish_reason)}, "
            f"{u.input_tokens} in / {u.output_tokens} out tokens, ${u.cost_usd:.6f}, "
            f"ttft {c.ttft_ms} ms, {c.duration_ms} ms, attempts {c.attempts}]",
            file=err,
        )
        return 0
    elif kind == "failed":
        fail = ev.failed
        partial = " (partial output above)" if fail.partial else ""
        cls = common_pb2.ErrorClass.Name(fail.error_class)
        print(f"\n[failed: {cls} {fail.message}{partial}]", file=err)
        return 1
    return None


@contextlib.asynccontextmanager
async def _in_process(args: argparse.Namespace, raw: bytes) -> AsyncIterator[str]:
    """Engine + dispatcher (+ simulator) in this process, served on a free loopback port."""
    from dispatcher.runtime import build_dispatcher, in_process
    from engine.factory import build_engine
    from modelroute.config import parse_config
    from modelroute.server import start_server

    source = str(args.config or DEFAULT_CONFIG_PATH)
    cfg = parse_config(raw, source=source)
    async with contextlib.AsyncExitStack() as stack:
        if args.simulator:
            from dispatcher.simulator import start_simulator

            sim = await stack.enter_async_context(start_simulator(config=cfg))
            url = sim.root_url.encode()
            cfg = parse_config(raw.replace(b"http://127.0.0.1:8090", url), source=source)
        runtime = await build_dispatcher(cfg, decide=in_process(build_engine(cfg)), ledger=None)
        handle = await start_server([runtime.register], port=0)
        handle.on_close.append(runtime.aclose)
        try:
            yield f"127.0.0.1:{handle.port}"
        finally:
            await handle.stop(1.0)


async def _execute(args: argparse.Namespace, target: str) -> int:
    async with aio.insecure_channel(target) as ch:
        stub = dispatcher_pb2_grpc.DispatcherStub(ch)
        async for ev in stub.Execute(build_request(args)):
            status = render(ev, args.quiet)
            if status is not None:
                return status
    print("\n[stream ended without an outcome]", file=sys.stderr)
    return 1


async def _main(args: argparse.Namespace, raw: bytes) -> int:
    try:
        if args.target:
            return await _execute(args, args.target)
        async with _in_process(args, raw) as target:
            return await _execute(args, target)
    except aio.AioRpcError as e:
        print(f"modelroute execute: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    raw = b""
    if not args.target:
        path = Path(args.config) if args.config else DEFAULT_CONFIG_PATH
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    return asyncio.run(_main(args, raw))
