"""Admin over real gRPC (port 0): kill switches and breakers, through the RPCs and the CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc import aio

from dispatcher import cmd_admin
from dispatcher.runtime import DispatcherRuntime, build_dispatcher
from modelroute.domain import DecideInput, Decision, ErrorClass
from modelroute.server import start_server
from modelroute.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc, engine_pb2
from tests.unit.test_executor_fakes import FakeProvider, make_config, make_plan, providers


async def _decide(inp: DecideInput) -> Decision:
    return make_plan(["alpha", "beta"])


@dataclass
class Stack:
    target: str
    runtime: DispatcherRuntime
    provs: dict[str, FakeProvider]
    stub: dispatcher_pb2_grpc.DispatcherAsyncStub
    admin: dispatcher_pb2_grpc.AdminAsyncStub


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    provs = providers()
    runtime = await build_dispatcher(make_config(), decide=_decide, ledger=None, providers=provs)
    handle = await start_server([runtime.register], port=0)
    target = f"127.0.0.1:{handle.port}"
    async with aio.insecure_channel(target) as ch:
        yield Stack(
            target,
            runtime,
            provs,
            dispatcher_pb2_grpc.DispatcherStub(ch),
            dispatcher_pb2_grpc.AdminStub(ch),
        )
    await handle.stop(1.0)
    await runtime.aclose()


def _request() -> dispatcher_pb2.ExecuteRequest:
    msg = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="hello there")
    return dispatcher_pb2.ExecuteRequest(
        request=engine_pb2.DecideRequest(tenant="t1", messages=[msg])
    )


async def _outcome(stack: Stack) -> str:
    events = [e async for e in stack.stub.Execute(_request(), timeout=10)]
    return events[-1].WhichOneof("event") or ""


async def _cli(*argv: str) -> int:
    """Run ``modelroute admin ARGV`` (in a thread: the command runs its own event loop)."""
    parser = argparse.ArgumentParser()
    cmd_admin.add_arguments(parser)
    return await asyncio.to_thread(cmd_admin.run, parser.parse_args(list(argv)))


async def test_cli_kill_stops_new_requests_and_unkill_releases(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _outcome(stack) == "completed"
    code = await _cli("kill", "tenant", "t1", "--reason", "abuse", "--target", stack.target)
    assert code == 0
    killed = json.loads(capsys.readouterr().out)
    assert killed["scope"] == "tenant" and killed["engaged"] and killed["reason"] == "abuse"
    with pytest.raises(aio.AioRpcError) as err:
        await _outcome(stack)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "tenant" in (err.value.details() or "")
    code = await _cli("switches", "--target", stack.target)
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (listed["value"], listed["engaged"]) == ("t1", True)
    code = await _cli("unkill", "tenant", "t1", "--target", stack.target)
    assert code == 0 and not json.loads(capsys.readouterr().out)["engaged"]
    assert await _outcome(stack) == "completed"


async def test_killed_model_is_skipped_for_new_requests(stack: Stack) -> None:
    await stack.admin.SetKillSwitch(
        dispatcher_pb2.SetKillSwitchRequest(
            scope=dispatcher_pb2.KILL_SCOPE_MODEL, value="alpha", engaged=True
        )
    )
    events = [e async for e in stack.stub.Execute(_request(), timeout=10)]
    started = [e.attempt_started.model.name for e in events if e.HasField("attempt_started")]
    assert started == ["beta"] and stack.provs["p1"].calls == []


async def test_kill_switch_rpc_stops_an_in_flight_stream(stack: Stack) -> None:
    stack.provs["p1"].script("alpha", [("text", "a"), ("hang",)])
    call = stack.stub.Execute(_request(), timeout=30)
    async for e in call:
        if e.HasField("delta"):
            break
    await stack.admin.SetKillSwitch(
        dispatcher_pb2.SetKillSwitchRequest(
            scope=dispatcher_pb2.KILL_SCOPE_TIER, value="std", engaged=True
        )
    )
    async with asyncio.timeout(1.0):
        rest = [e async for e in call]
    assert rest[-1].failed.error_class == common_pb2.ERROR_CLASS_KILLED
    assert stack.provs["p1"].cancelled == 1


async def test_set_kill_switch_rejects_missing_scope_or_value(stack: Stack) -> None:
    for req, field in (
        (dispatcher_pb2.SetKillSwitchRequest(value="x", engaged=True), "scope"),
        (
            dispatcher_pb2.SetKillSwitchRequest(
                scope=dispatcher_pb2.KILL_SCOPE_TIER, value=" ", engaged=True
            ),
            "value",
        ),
    ):
        with pytest.raises(aio.AioRpcError) as err:
            await stack.admin.SetKillSwitch(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith(field)


async def test_cli_lists_breakers_after_failures(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.provs["p1"].script("alpha", [("error", ErrorClass.OVERLOADED)])
    assert await _outcome(stack) == "completed"
    code = await _cli("breakers", "--target", stack.target)
    assert code == 0
    rows = {r["endpoint"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["p1/alpha"]["fail_count"] == 1 and rows["p1/alpha"]["state"] == "closed"
    assert rows["p2/beta"]["fail_count"] == 0


async def test_cli_reports_an_unreachable_dispatcher(capsys: pytest.CaptureFixture[str]) -> None:
    code = await _cli("switches", "--target", "127.0.0.1:1", "--timeout-s", "0.5")
    assert code == 2
    assert "modelroute admin: UNAVAILABLE" in capsys.readouterr().err
