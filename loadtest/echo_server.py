"""A bare grpc.aio server that answers every call with fixed bytes: the gRPC floor for benchmarks.

It parses nothing and decides nothing; the reply is a real serialized Decision read from a file,
so the wire sizes equal the engine's.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import grpc
from grpc import aio


async def serve(port: int, reply: bytes) -> None:
    async def echo(request: bytes, context: object) -> bytes:
        return reply

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Decide": grpc.unary_unary_rpc_method_handler(
                echo, request_deserializer=None, response_serializer=None
            )
        },
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--reply-file", required=True)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, Path(args.reply_file).read_bytes()))


if __name__ == "__main__":
    main()
