"""A minimal keep-alive HTTP/1.1 client for SSE over chunked encoding: the benchmark's floor.

Only what the execute benchmark needs against the simulator (POST, chunked or sized response,
``data:`` events), so that the direct path costs as little client CPU as possible.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping


class RawSSEClient:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def events(
        self, path: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[bytes]:
        """POST ``body`` and yield each SSE ``data:`` payload; raises on a non-200 status."""
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
        )
        writer.write(head.encode() + body)
        reusable = False
        try:
            status, chunked, length = await _read_head(reader)
            if status != 200:
                raise OSError(f"http {status}")
            buf = b""
            async for piece in _body(reader, chunked, length):
                buf += piece
                *events, buf = buf.split(b"\n\n")
                for ev in events:
                    for line in ev.split(b"\n"):
                        if line.startswith(b"data: "):
                            yield line[6:]
            reusable = True
        finally:
            if reusable:
                self._idle.append((reader, writer))
            else:
                writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, bool, int]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    chunked, length = False, 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "content-length":
            length = int(value.strip())
    return status, chunked, length


async def _body(reader: asyncio.StreamReader, chunked: bool, length: int) -> AsyncIterator[bytes]:
    if not chunked:
        yield await reader.readexactly(length)
        return
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]
