"""A finished attempt's connection goes back to the pool when the end of the response (the last
chunk of the HTTP body, after ``data: [DONE]``) arrives only after the request has completed:
the run neither cancels that read nor waits for it."""

from __future__ import annotations

import asyncio
import json

import pytest

from dispatcher.events import Completed, Delta
from dispatcher.executor import Executor
from dispatcher.providers.http1 import PlainHTTP1
from dispatcher.providers.openai import OpenAIChatProvider
from dispatcher.providers.sse import _PROXY_ENV
from modelroute.config import ProviderConfig
from tests.unit.test_executor_fakes import collect, make_config, make_plan, of_type


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


ANSWER = (
    _event({"choices": [{"index": 0, "delta": {"content": "Paris."}, "finish_reason": None}]})
    + _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + _event({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 2}})
    + b"data: [DONE]\n\n"
)


class LateEnd:
    """An OpenAI-style streaming server that sends the body's last chunk (``0``) only when the
    test sets ``release``; connections are kept alive."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.connections = 0

    async def on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                writer.write(_chunk(ANSWER))
                await writer.drain()
                await self.release.wait()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_connection_is_reused_when_the_body_ends_after_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in _PROXY_ENV:  # a proxy would put the provider on httpx
        monkeypatch.delenv(name, raising=False)
    srv = LateEnd()
    server = await asyncio.start_server(srv.on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = ProviderConfig(
        name="p1",
        protocol="openai",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key_env=None,
        connect_timeout_ms=1000,
        stall_timeout_ms=5000,
        http2=False,
        supports_continuation=False,
    )
    provider = OpenAIChatProvider(cfg, environ={})
    client = provider._client
    assert isinstance(client, PlainHTTP1)
    ex = Executor(make_config(), {"p1": provider})
    try:
        for i in range(3):
            srv.release.clear()
            events = await asyncio.wait_for(collect(ex, make_plan(["alpha"])), 5)
            assert isinstance(events[-1], Completed), events
            assert "".join(d.text for d in of_type(events, Delta)) == "Paris."
            assert not client._idle  # the end of the body has not come yet
            srv.release.set()
            await asyncio.wait_for(ex.drain(), 5)
            assert len(client._idle) == 1, f"request {i}: connection not back in the pool"
        assert client.opened == 1 and srv.connections == 1
    finally:
        await provider.aclose()
        server.close()
