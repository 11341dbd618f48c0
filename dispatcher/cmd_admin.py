"""``modelroute admin``: kill switches and circuit breakers of a running dispatcher.

    modelroute admin kill provider simulator --reason "incident 42"
    modelroute admin unkill provider simulator
    modelroute admin switches
    modelroute admin breakers
Each prints JSON lines; ``--target HOST:PORT`` names the dispatcher (default 127.0.0.1:50051).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from grpc import aio

from modelroute.v1 import dispatcher_pb2, dispatcher_pb2_grpc

SCOPES = {
    "tier": dispatcher_pb2.KILL_SCOPE_TIER,
    "tenant": dispatcher_pb2.KILL_SCOPE_TENANT,
    "provider": dispatcher_pb2.KILL_SCOPE_PROVIDER,
    "model": dispatcher_pb2.KILL_SCOPE_MODEL,
}
_SCOPE_NAMES = {v: k for k, v in SCOPES.items()}
_BREAKER_NAMES = {
    dispatcher_pb2.BREAKER_STATE_KIND_CLOSED: "closed",
    dispatcher_pb2.BREAKER_STATE_KIND_OPEN: "open",
    dispatcher_pb2.BREAKER_STATE_KIND_HALF_OPEN: "half_open",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (
        ("kill", "engage a kill switch: new requests stop at once, running ones within 1 s"),
        ("unkill", "release a kill switch"),
        ("switches", "list kill switches"),
        ("breakers", "list circuit breakers per provider endpoint"),
    ):
        s = sub.add_parser(name, help=help_text, description=help_text)
        s.add_argument("--target", default="127.0.0.1:50051", help="dispatcher HOST:PORT")
        s.add_argument(
            "--token-env",
            default="MODELROUTE_ADMIN_TOKEN",
            help="environment variable holding the admin token, sent as a bearer token when set",
        )
        s.add_argument("--timeout-s", type=float, default=5.0)
        if name in ("kill", "unkill"):
            s.add_argument("scope", choices=sorted(SCOPES))
            s.add_argument("value", help="the tier, tenant, provider or model name")
            s.add_argument("--reason", default="", help="why (shown by `admin switches`)")


def _switch(s: dispatcher_pb2.KillSwitch) -> dict[str, Any]:
    return {
        "scope": _SCOPE_NAMES.get(s.scope, "unspecified"),
        "value": s.value,
        "engaged": s.engaged,
        "reason": s.reason,
        "changed_at_unix_ms": s.changed_at_unix_ms,
    }


def _breaker(b: dispatcher_pb2.BreakerState) -> dict[str, Any]:
    return {
        "endpoint": f"{b.endpoint.provider}/{b.endpoint.name}",
        "state": _BREAKER_NAMES.get(b.state, "unspecified"),
        "fail_count": b.fail_count,
        "changed_at_unix_ms": b.changed_at_unix_ms,
    }


def _metadata(token_env: str) -> tuple[tuple[str, str], ...]:
    token = os.environ.get(token_env, "")
    return (("authorization", f"Bearer {token}"),) if token else ()


async def _call(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with aio.insecure_channel(args.target) as ch:
        stub = dispatcher_pb2_grpc.AdminStub(ch)
        t = args.timeout_s
        md = _metadata(args.token_env)
        if args.action in ("kill", "unkill"):
            req = dispatcher_pb2.SetKillSwitchRequest(
                scope=SCOPES[args.scope],
                value=args.value,
                engaged=args.action == "kill",
                reason=args.reason,
            )
            return [_switch(await stub.SetKillSwitch(req, timeout=t, metadata=md))]
        if args.action == "switches":
            resp = await stub.ListKillSwitches(
                dispatcher_pb2.ListKillSwitchesRequest(), timeout=t, metadata=md
            )
            return [_switch(s) for s in resp.switches]
        br = await stub.ListBreakers(dispatcher_pb2.ListBreakersRequest(), timeout=t, metadata=md)
        return [_breaker(b) for b in br.breakers]


def run(args: argparse.Namespace) -> int:
    try:
        rows = asyncio.run(_call(args))
    except aio.AioRpcError as e:
        print(f"modelroute admin: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row, sort_keys=True))
    return 0
