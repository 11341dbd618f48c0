"""Admin behind a bearer token named by the policy: refused without it, open with it, closed when
the server's variable is unset; the token never reaches the log."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from dispatcher import cmd_admin
from dispatcher.runtime import build_dispatcher
from modelroute.domain import DecideInput, Decision
from modelroute.server import ServerHandle, start_server
from modelroute.v1 import dispatcher_pb2, dispatcher_pb2_grpc
from tests.unit.test_executor_fakes import make_config, make_plan, providers

TOKEN = "s3cret-admin-token-for-tests"
ENV = "MODELROUTE_TEST_ADMIN_TOKEN"


async def _decide(inp: DecideInput) -> Decision:
    return make_plan(["alpha"])


async def _serve(token_env: str) -> ServerHandle:
    cfg = dataclasses.replace(make_config(), admin_token_env=token_env)
    runtime = await build_dispatcher(cfg, decide=_decide, ledger=None, providers=providers())
    handle = await start_server([runtime.register], port=0)
    handle.on_close.append(runtime.aclose)
    return handle


@pytest.fixture
async def guarded(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setenv(ENV, TOKEN)
    handle = await _serve(ENV)
    yield f"127.0.0.1:{handle.port}"
    await handle.stop(1.0)


async def _list(target: str, token: str | None) -> dispatcher_pb2.ListKillSwitchesResponse:
    md = (("authorization", f"Bearer {token}"),) if token is not None else ()
    async with aio.insecure_channel(target) as ch:
        stub = dispatcher_pb2_grpc.AdminStub(ch)
        return await stub.ListKillSwitches(dispatcher_pb2.ListKillSwitchesRequest(), metadata=md)


@pytest.mark.parametrize("token", [None, "wrong", ""])
async def test_missing_or_wrong_token_is_unauthenticated(
    guarded: str, token: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(aio.AioRpcError) as e:
        await _list(guarded, token)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert TOKEN not in (e.value.details() or "") and TOKEN not in caplog.text


async def test_right_token_passes_and_the_cli_sends_it(
    guarded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert list((await _list(guarded, TOKEN)).switches) == []
    parser = argparse.ArgumentParser()
    cmd_admin.add_arguments(parser)
    args = parser.parse_args(["kill", "tier", "std", "--target", guarded, "--token-env", ENV])
    assert await asyncio.to_thread(cmd_admin.run, args) == 0
    assert '"engaged": true' in capsys.readouterr().out
    assert len((await _list(guarded, TOKEN)).switches) == 1
    # The CLI without the variable is refused like any other caller.
    args = parser.parse_args(["switches", "--target", guarded, "--token-env", "UNSET_VAR_X"])
    assert await asyncio.to_thread(cmd_admin.run, args) == 2
    assert "UNAUTHENTICATED" in capsys.readouterr().err


async def test_unset_server_variable_closes_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    handle = await _serve(ENV)
    try:
        with pytest.raises(aio.AioRpcError) as e:
            await _list(f"127.0.0.1:{handle.port}", TOKEN)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert ENV in (e.value.details() or "")
    finally:
        await handle.stop(1.0)
