"""The lean HTTP/1.1 client against a tiny real server on an ephemeral port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from dispatcher.providers.http1 import PlainHTTP1

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode().split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":")[1])
    return await reader.readexactly(length)


def chunked(close_after: bool = False) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        body = await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"data: a\n\n", b"data: " + body + b"\n\n"):
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return not close_after

    return reply


async def sized(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 429 Too Many\r\ncontent-length: 5\r\nretry-after: 2\r\n\r\nslow!")
    await writer.drain()
    return True


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(5)
    return False


async def serve(reply: Reply) -> tuple[asyncio.Server, PlainHTTP1]:
    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reply(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = PlainHTTP1(f"http://127.0.0.1:{port}/v1", connect_timeout_s=1, read_timeout_s=0.3)
    return server, client


async def body_of(client: PlainHTTP1, data: bytes) -> tuple[int, bytes]:
    resp = await client.post(f"{client.origin}/v1/x", {"accept": "text/event-stream"}, data)
    try:
        out = b"".join([p async for p in resp.aiter_bytes()])
    finally:
        resp.release()
    return resp.status_code, out


@pytest.fixture
async def closing() -> AsyncIterator[list[tuple[asyncio.Server, PlainHTTP1]]]:
    made: list[tuple[asyncio.Server, PlainHTTP1]] = []
    yield made
    for server, client in made:
        await client.aclose()
        server.close()


async def test_chunked_bodies_on_one_kept_alive_connection(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    server, client = await serve(chunked())
    closing.append((server, client))
    for i in range(3):
        assert await body_of(client, b"n%d" % i) == (200, b"data: a\n\ndata: n%d\n\n" % i)
    assert client.opened == 1


def framed(*pieces: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces)


def raw_body(*writes: bytes) -> Reply:
    """A chunked response written in the given pieces, each flushed, with a pause between."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for w in writes:
            writer.write(w)
            await writer.drain()
            await asyncio.sleep(0.02)
        return True

    return reply


async def test_chunks_that_arrive_together_are_read_as_one_piece(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    """Whole chunks already in the buffer come out in one piece; a chunk cut across reads
    (size line alone, then half the payload, then the rest) still comes out whole in order."""
    writes = (
        framed(b"data: a\n\n", b"data: b\n\n", b"data: c\n\n"),
        b"9\r\n",
        b"data:",
        b" d\n\n\r\n" + framed(b"data: e\n\n") + b"0\r\n\r\n",
    )
    server, client = await serve(raw_body(*writes))
    closing.append((server, client))
    resp = await client.post(f"{client.origin}/v1/x", {}, b"")
    try:
        pieces = [p async for p in resp.aiter_bytes()]
    finally:
        resp.release()
    assert pieces[0] == b"data: a\n\ndata: b\n\ndata: c\n\n"
    assert b"".join(pieces) == b"data: a\n\ndata: b\n\ndata: c\n\ndata: d\n\ndata: e\n\n"
    assert client.opened == 1 and len(client._idle) == 1  # body read to its end: reusable


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (framed(b"data: a\n\n")[:-2] + b"XY" + b"0\r\n\r\n", "bad chunk end"),
        (b"-4\r\nabcd\r\n0\r\n\r\n", "bad chunk size"),
        (b"zz\r\nabcd\r\n", "bad chunk size"),
    ],
)
async def test_bad_chunk_framing_is_a_protocol_error(
    closing: list[tuple[asyncio.Server, PlainHTTP1]], body: bytes, message: str
) -> None:
    server, client = await serve(raw_body(body))
    closing.append((server, client))
    with pytest.raises(httpx.RemoteProtocolError, match=message):
        await body_of(client, b"")


async def test_connection_closed_while_idle_is_replaced_once(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    server, client = await serve(chunked(close_after=True))
    closing.append((server, client))
    assert (await body_of(client, b"1"))[0] == 200
    await asyncio.sleep(0.05)
    assert (await body_of(client, b"2"))[1].endswith(b"data: 2\n\n")
    assert client.opened == 2


async def test_sized_error_body_and_headers(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    server, client = await serve(sized)
    closing.append((server, client))
    resp = await client.post(f"{client.origin}/v1/x", {}, b"{}")
    try:
        assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
        assert b"".join([p async for p in resp.aiter_bytes()]) == b"slow!"
    finally:
        resp.release()


async def test_stalled_body_raises_read_timeout(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    server, client = await serve(stall)
    closing.append((server, client))
    with pytest.raises(httpx.ReadTimeout):
        await body_of(client, b"{}")


def trickle(gaps_s: tuple[float, ...]) -> Reply:
    """A chunked body whose pieces follow each other after ``gaps_s`` seconds."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for i, gap in enumerate(gaps_s):
            await asyncio.sleep(gap)
            piece = b"data: %d\n\n" % i
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    return reply


async def test_the_stall_timeout_counts_each_wait_not_the_whole_body(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    """Five gaps of 0.2 s under a 0.3 s stall timeout: 1 s in all, no single wait too long."""
    server, client = await serve(trickle((0.2,) * 5))
    closing.append((server, client))
    status, body = await body_of(client, b"{}")
    assert status == 200 and body.count(b"data: ") == 5


async def test_a_slow_reader_is_not_a_stalled_provider(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    """The body arrives at once; the reader takes 0.5 s per piece (over the 0.3 s timeout)."""
    server, client = await serve(trickle((0.0,) * 3))
    closing.append((server, client))
    resp = await client.post(f"{client.origin}/v1/x", {}, b"{}")
    try:
        pieces = []
        async for p in resp.aiter_bytes():
            pieces.append(p)
            await asyncio.sleep(0.5)
    finally:
        resp.release()
    assert b"".join(pieces).count(b"data: ") == 3


async def test_a_stall_after_some_data_raises_read_timeout(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    server, client = await serve(trickle((0.0, 0.0, 2.0)))
    closing.append((server, client))
    resp = await client.post(f"{client.origin}/v1/x", {}, b"{}")
    got = []
    try:
        with pytest.raises(httpx.ReadTimeout):
            async for p in resp.aiter_bytes():
                got.append(p)
    finally:
        resp.release()
    assert b"".join(got).count(b"data: ") == 2


async def test_refused_connection_raises_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = PlainHTTP1(f"http://127.0.0.1:{port}", connect_timeout_s=1, read_timeout_s=1)
    with pytest.raises(httpx.ConnectError):
        await client.post(f"{client.origin}/x", {}, b"")


async def pushed(client: PlainHTTP1, done_at: bytes = b"") -> tuple[bool, list[bytes]]:
    """``Response.push`` with a sink that keeps the pieces and is done once it saw ``done_at``."""
    got: list[bytes] = []

    def sink(piece: bytes) -> bool:
        got.append(piece)
        return bool(done_at) and done_at in b"".join(got)

    resp = await client.post(f"{client.origin}/v1/x", {}, b"{}")
    return await resp.push(sink), got


async def test_a_pushed_body_reaches_the_sink_and_the_connection_is_reused(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    server, client = await serve(trickle((0.0, 0.05, 0.05)))
    closing.append((server, client))
    for _ in range(2):
        ended, got = await pushed(client)
        assert ended is False  # the body ended before the sink was done
        assert b"".join(got) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert len(client._idle) == 1
    assert client.opened == 1


async def test_push_returns_when_the_sink_is_done_and_reads_the_end_in_the_background(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    writes = (framed(b"data: a\n\n", b"data: b\n\n"), framed(b"data: c\n\n") + b"0\r\n\r\n")
    server, client = await serve(raw_body(*writes))
    closing.append((server, client))
    ended, got = await pushed(client, done_at=b"data: b")
    assert ended is True and b"".join(got) == b"data: a\n\ndata: b\n\n"
    assert not client._idle  # the end of the body has not come yet
    await asyncio.sleep(0.1)
    assert b"".join(got) == b"data: a\n\ndata: b\n\n"  # nothing more for the sink
    assert len(client._idle) == 1 and client.opened == 1


async def test_push_raises_a_stall_and_bad_framing(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    server, client = await serve(trickle((0.0, 0.0, 2.0)))
    closing.append((server, client))
    with pytest.raises(httpx.ReadTimeout):
        await pushed(client)
    server, client = await serve(raw_body(b"zz\r\nabcd\r\n"))
    closing.append((server, client))
    with pytest.raises(httpx.RemoteProtocolError, match="bad chunk size"):
        await pushed(client)
    assert not client._idle


async def test_a_sink_error_and_a_cancel_close_the_connection(
    closing: list[tuple[asyncio.Server, PlainHTTP1]],
) -> None:
    server, client = await serve(trickle((0.0, 0.2, 0.2)))
    closing.append((server, client))

    def broken(piece: bytes) -> bool:
        raise ValueError("sink bug")

    resp = await client.post(f"{client.origin}/v1/x", {}, b"{}")
    with pytest.raises(ValueError, match="sink bug"):
        await resp.push(broken)
    got: list[bytes] = []
    first = asyncio.Event()

    def sink(piece: bytes) -> bool:
        got.append(piece)
        first.set()
        return False

    resp = await client.post(f"{client.origin}/v1/x", {}, b"{}")
    task = asyncio.create_task(resp.push(sink))
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)
    assert got == [b"data: 0\n\n"]  # nothing after the cancel
    assert not client._idle and client.opened == 2
