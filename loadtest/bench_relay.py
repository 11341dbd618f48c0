"""A bare relay for ``make bench-execute``: the machine's and gRPC's floor for the dispatcher.

A grpc.aio server answering ``modelroute.v1.Dispatcher/Execute`` with nothing but the relay: it
reads the prompt, the model and ``max_output_tokens`` from the request, streams Chat Completions
from the simulator, and sends each SSE text chunk as one ``TextDelta`` event, then a
``Completed`` event. No decision, no validation, no breaker, no budget, no ledger, no merging.

``--http raw`` uses the benchmark's minimal keep-alive HTTP client (``loadtest.raw_sse``): the
floor of Python gRPC plus sockets. ``--http httpx`` uses one pooled ``httpx.AsyncClient`` like
the dispatcher's adapters: the floor plus the HTTP library the dispatcher uses.

``python -m loadtest.bench_relay --port P --sim-port S [--http raw|httpx]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
from grpc import aio

from loadtest.bench_procs import child_process, dispatcher_stubs, free_port, wait_port
from loadtest.raw_sse import RawSSEClient
from modelroute.v1 import dispatcher_pb2

PATH = "/v1/chat/completions"


def _body(req: dispatcher_pb2.ExecuteRequest) -> bytes:
    r = req.request
    return json.dumps(
        {
            "model": r.overrides.allowed_models[0],
            "messages": [{"role": "user", "content": r.messages[0].content}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": r.max_output_tokens,
        }
    ).encode()


async def _httpx_events(client: httpx.AsyncClient, url: str, body: bytes) -> AsyncIterator[bytes]:
    buf = b""
    headers = {"content-type": "application/json", "accept": "text/event-stream"}
    async with client.stream("POST", url, content=body, headers=headers) as resp:
        async for piece in resp.aiter_bytes():
            buf += piece
            *events, buf = buf.split(b"\n\n")
            for ev in events:
                if ev.startswith(b"data: "):
                    yield ev[6:]


class Relay:
    def __init__(self, sim_port: int, http: str) -> None:
        self.raw = RawSSEClient("127.0.0.1", sim_port) if http == "raw" else None
        self.client = httpx.AsyncClient(timeout=60) if http == "httpx" else None
        self.url = f"http://127.0.0.1:{sim_port}{PATH}"

    def events(self, body: bytes) -> AsyncIterator[bytes]:
        if self.raw is not None:
            return self.raw.events(PATH, body, {})
        assert self.client is not None
        return _httpx_events(self.client, self.url, body)

    async def execute(
        self, req: dispatcher_pb2.ExecuteRequest, context: Any
    ) -> AsyncIterator[dispatcher_pb2.ExecuteEvent]:
        rid = req.request.request_id
        seq = 0
        async for data in self.events(_body(req)):
            if data == b"[DONE]":
                break
            choices = json.loads(data).get("choices") or [{}]
            text = choices[0].get("delta", {}).get("content")
            if text:
                seq += 1
                yield dispatcher_pb2.ExecuteEvent(
                    seq=seq, request_id=rid, delta=dispatcher_pb2.TextDelta(text=text, attempt=1)
                )
        yield dispatcher_pb2.ExecuteEvent(
            seq=seq + 1, request_id=rid, completed=dispatcher_pb2.Completed(attempts=1)
        )


async def serve(port: int, sim_port: int, http: str) -> None:
    relay = Relay(sim_port, http)
    handler = grpc.method_handlers_generic_handler(
        "modelroute.v1.Dispatcher",
        {
            "Execute": grpc.unary_stream_rpc_method_handler(
                relay.execute,
                request_deserializer=dispatcher_pb2.ExecuteRequest.FromString,
                response_serializer=dispatcher_pb2.ExecuteEvent.SerializeToString,
            )
        },
    )
    server = aio.server(options=[("grpc.server_max_unrequested_time_in_server", 600)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


RELAY_CODE = "from loadtest.bench_relay import main; main()"


@contextlib.asynccontextmanager
async def relay(sim_port: int, http: str, n_channels: int = 4):  # type: ignore[no-untyped-def]
    """The bare relay (``loadtest.bench_relay``): the floor the dispatcher is compared with.
    Yields (process, stubs over ``n_channels`` channels, its address)."""
    port = free_port()
    argv = ["--port", str(port), "--sim-port", str(sim_port), "--http", http]
    async with child_process(f"relay-{http}", argv, RELAY_CODE) as proc:
        await wait_port(proc, port)
        async with dispatcher_stubs(port, n_channels) as stubs:
            yield proc, stubs, f"127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sim-port", type=int, required=True)
    ap.add_argument("--http", choices=("raw", "httpx"), default="raw")
    args = ap.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve(args.port, args.sim_port, args.http))


if __name__ == "__main__":
    main()
