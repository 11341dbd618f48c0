"""Every handler a server registers gets the error mapping: generic and registered methods, unary
and server streaming, on a real grpc.aio server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from modelroute.errors import BudgetRejected, InvalidInput
from modelroute.server import ServerHandle, start_server

SECRET_PROMPT = "the prompt text that must not reach a log"


async def _unary_invalid(request: bytes, context: Any) -> bytes:
    raise InvalidInput("messages[0].content", "must not be empty")


async def _unary_bug(request: bytes, context: Any) -> bytes:
    raise RuntimeError(SECRET_PROMPT)


async def _unary_ok(request: bytes, context: Any) -> bytes:
    return b"ok:" + request


async def _stream_then_fail(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"first"
    raise BudgetRejected("no hop can pay for the prompt")


def _register(server: aio.Server) -> list[str]:
    generic = grpc.method_handlers_generic_handler(
        "test.Generic",
        {
            "Invalid": grpc.unary_unary_rpc_method_handler(_unary_invalid),
            "Bug": grpc.unary_unary_rpc_method_handler(_unary_bug),
            "Ok": grpc.unary_unary_rpc_method_handler(_unary_ok),
            "Stream": grpc.unary_stream_rpc_method_handler(_stream_then_fail),
        },
    )
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(  # type: ignore[attr-defined]
        "test.Registered", {"Bug": grpc.unary_unary_rpc_method_handler(_unary_bug)}
    )
    return ["test.Generic", "test.Registered"]


@pytest.fixture()
async def target() -> AsyncIterator[str]:
    handle: ServerHandle = await start_server([_register], port=0)
    yield f"127.0.0.1:{handle.port}"
    await handle.stop(1.0)


async def test_errors_get_their_status_and_message(target: str) -> None:
    async with aio.insecure_channel(target) as ch:
        with pytest.raises(aio.AioRpcError) as err:
            await ch.unary_unary("/test.Generic/Invalid", None, None)(b"x")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == "messages[0].content: must not be empty"
        assert await ch.unary_unary("/test.Generic/Ok", None, None)(b"x") == b"ok:x"


@pytest.mark.parametrize("method", ["/test.Generic/Bug", "/test.Registered/Bug"])
async def test_a_bug_is_internal_with_a_reference_and_no_request_data_logged(
    target: str, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="modelroute.grpc")
    async with aio.insecure_channel(target) as ch:
        with pytest.raises(aio.AioRpcError) as err:
            await ch.unary_unary(method, None, None)(b"request bytes")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    details = err.value.details() or ""
    assert details.startswith("internal error (ref ")
    ref = details.removeprefix("internal error (ref ").rstrip(")")
    logged = [r for r in caplog.records if ref in r.getMessage()]
    assert len(logged) == 1 and method in logged[0].getMessage()
    assert "RuntimeError" in logged[0].getMessage()
    assert "_unary_bug" in logged[0].getMessage()  # where it happened
    assert SECRET_PROMPT not in caplog.text  # what it said (it may quote request data)


async def test_a_stream_keeps_what_it_sent_and_ends_with_the_status(target: str) -> None:
    async with aio.insecure_channel(target) as ch:
        call = ch.unary_stream("/test.Generic/Stream", None, None)(b"x")
        got = []
        with pytest.raises(aio.AioRpcError) as err:
            async for item in call:
                got.append(item)
    assert got == [b"first"]
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
