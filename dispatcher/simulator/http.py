"""A small HTTP/1.1 server on asyncio streams and h11, with socket-level control for faults.

One task per connection; keep-alive supported; a handler gets the whole request and a
``Responder`` that can send a full response, stream a chunked body, go silent, or cut the
connection (abort, no terminating chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import h11

log = logging.getLogger("modelroute.simulator")

MAX_BODY_BYTES = 64 * 1024 * 1024
READ_SIZE = 64 * 1024
# Streamed chunks are written without awaiting until this many bytes wait in the socket buffer.
WRITE_HIGH_WATER = 64 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes


class ClientGone(Exception):
    """The client closed the connection while we were writing."""


class Responder:
    """Writes one response on a connection."""

    def __init__(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._conn = conn
        self._reader = reader
        self._writer = writer
        self.status = 0
        self.aborted = False

    async def _write(self, event: h11.Event) -> None:
        data = self._conn.send(event)
        if data is None:
            return
        if self._writer.is_closing():
            raise ClientGone
        self._writer.write(data)
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as e:
            raise ClientGone from e

    async def send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """A complete response with Content-Length."""
        self.status = status
        hdrs = [(k.encode(), v.encode()) for k, v in headers.items()]
        hdrs.append((b"content-length", str(len(body)).encode()))
        await self._write(h11.Response(status_code=status, headers=hdrs))
        if body:
            await self._write(h11.Data(data=body))
        await self._write(h11.EndOfMessage())

    async def send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        await self.send(status, {"content-type": "application/json", **(headers or {})}, body)

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        """Start a chunked (streamed) body."""
        self.status = status
        hdrs = [(k.encode(), v.encode()) for k, v in headers.items()]
        hdrs.append((b"transfer-encoding", b"chunked"))
        await self._write(h11.Response(status_code=status, headers=hdrs))

    async def write(self, data: bytes) -> None:
        """One chunk of a streamed body (framed here: the hot path skips h11's event objects)."""
        if not data:
            return
        if self._writer.is_closing():
            raise ClientGone
        self._writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        if self._writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            try:
                await self._writer.drain()
            except (ConnectionError, RuntimeError) as e:
                raise ClientGone from e

    async def finish(self) -> None:
        await self._write(h11.EndOfMessage())

    async def cut(self) -> None:
        """Cut the connection once what was written is on the wire: no terminating chunk, no
        close handshake (a reset)."""
        self.aborted = True
        transport = self._writer.transport
        transport.set_write_buffer_limits(high=0, low=0)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._writer.drain()
        transport.abort()

    async def hang(self) -> None:
        """Go silent with the connection open until the client closes it (or we are cancelled)."""
        self.aborted = True
        while True:
            try:
                data = await self._reader.read(READ_SIZE)
            except ConnectionError:
                return
            if not data:
                return


Handler = Callable[[Request, Responder], Awaitable[None]]


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[h11.Request, bytes] | None:
    """The next full request on the connection, or None when the client closed it."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                writer.write(
                    conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
                )
            data = await reader.read(READ_SIZE)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_BYTES:
                raise h11.RemoteProtocolError("body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return head, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    """Serve requests on one connection until it closes (keep-alive between them)."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            try:
                got = await _read_request(conn, reader, writer)
            except h11.RemoteProtocolError as e:
                await _bad_request(conn, writer, e.error_status_hint)
                return
            if got is None:
                return
            head, body = got
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
            path = head.target.decode("latin-1").split("?", 1)[0]
            responder = Responder(conn, reader, writer)
            request = Request(head.method.decode(), path, headers, body)
            try:
                await handler(request, responder)
            except (ClientGone, ConnectionError, asyncio.CancelledError):
                raise
            except Exception:
                log.exception("simulator handler failed on %s %s", request.method, path)
                return
            if responder.aborted or conn.our_state is not h11.DONE:
                return
            if conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (ClientGone, ConnectionError):
        return
    finally:
        if conn.our_state is h11.SEND_BODY:
            writer.transport.abort()
        else:
            writer.close()


async def _bad_request(conn: h11.Connection, writer: asyncio.StreamWriter, status: int) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = b'{"error":{"message":"malformed HTTP request","type":"invalid_request_error"}}'
    with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
        data = conn.send(
            h11.Response(
                status_code=status,
                headers=[
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            )
        )
        writer.write((data or b"") + (conn.send(h11.Data(data=body)) or b""))
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()


class HttpServer:
    """Owns the listening socket and every connection task, so ``close()`` ends them all."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._on_connect, host, port, backlog=4096)
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await serve_connection(reader, writer, self._handler)
        except asyncio.CancelledError:
            # close() cancelled this connection: cut it. Not re-raised: this task is the top of
            # the connection and asyncio's stream callback logs a cancelled one as an error.
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
