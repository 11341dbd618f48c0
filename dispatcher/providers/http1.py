"""A lean keep-alive HTTP/1.1 client for streaming POSTs to one plain ``http://`` origin.

Local inference servers (vLLM, llama.cpp, Ollama) and the provider simulator speak plain
HTTP/1.1. For them the dispatcher skips httpx: at 100 concurrent streams its per-chunk layers
(pool bookkeeping, a cancel scope per read, h11) cost about 3x the CPU of reading the socket
directly (``loadtest/bench_relay.py``: relay-httpx vs relay-raw). HTTPS, HTTP/2 and proxies
stay on httpx (``dispatcher.providers.sse.new_http_clients`` chooses).

Failures are raised as the httpx exceptions ``classify_transport`` already maps (connect
timeout, connect error, read timeout = stall, connection cut), so both paths classify alike.
Each connection is its own ``asyncio.Protocol``: what arrives is appended to one buffer and the
chunked framing is parsed from it, so one read that holds several SSE events costs one wake-up.
A body is read either by a task (``Response.aiter_bytes``) or, for a stream, pushed
(``Response.push``): its pieces go to a callback from the transport's own callback as they
arrive, with no task woken per read. A connection goes back to the idle list only after its
body was read to the end; a request that fails on a reused idle connection before any response
byte (the server closed it meanwhile) is retried once on a new connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

MAX_HEAD_BYTES = 64 * 1024
# Reading pauses when this much is buffered and not taken (a task reading slowly).
HIGH_WATER = 1024 * 1024
# After a pushed stream's consumer has what it needs, the rest of the body (usually just the
# last chunk) is read within this long, for the connection to be reused; else it is closed.
DRAIN_TIMEOUT_S = 0.25


class _Conn(asyncio.Protocol):
    """One connection: bytes arrive in ``buf``; a task waits for more with ``readable()``, or
    ``on_event`` (push mode) is called on every arrival, end or error."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.eof = False
        self.exc: Exception | None = None  # why the connection can no longer be read
        self.idle_since = 0.0
        self.on_event: Callable[[], None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.on_event is not None:
            self.on_event()
            return
        if len(self.buf) > HIGH_WATER and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._notify()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None and self.exc is None:
            self.exc = httpx.ReadError(type(exc).__name__)
        self._notify()

    def fail(self, exc: Exception) -> None:
        """Make the current and every later read raise ``exc`` (a stall)."""
        if self.exc is None:
            self.exc = exc
        self._notify()

    def _notify(self) -> None:
        if self.on_event is not None:
            self.on_event()
        else:
            self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def readable(self) -> None:
        """Wait until more bytes, the end or an error arrived; raises the error."""
        if self.exc is None and not self.eof:
            if self._paused and self.transport is not None:
                self._paused = False
                self.transport.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.exc is not None:
            raise self.exc

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise httpx.ReadError("ConnectionResetError")
        self.transport.write(data)

    def close(self) -> None:
        self.on_event = None
        if self.transport is not None:
            self.transport.close()


@dataclass(slots=True)
class Response:
    status_code: int
    headers: dict[str, str]
    _conn: _Conn
    _chunked: bool
    _length: int | None  # None: until the connection closes
    _client: PlainHTTP1
    _keep: bool = True  # the server did not ask to close the connection
    _done: bool = False
    _reusable: bool = False
    _released: bool = False
    _left: int = 0  # chunked: payload bytes left in the current chunk; -1: its CRLF is due
    # The stall watch: one timer per response instead of a timeout around every read (that
    # was a timer armed and cancelled per chunk). ``_waiting_since`` is set while a read waits.
    _waiting_since: float | None = None
    _watch: asyncio.TimerHandle | None = None

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, as it arrives; the connection is reusable once this ends normally."""
        return self._pieces()

    def _arm(self, delay_s: float) -> None:
        self._watch = asyncio.get_running_loop().call_later(delay_s, self._check_stall)

    def _check_stall(self) -> None:
        """A read that has waited ``read_timeout_s`` fails with ReadTimeout; otherwise the
        watch looks again when the current wait would reach it."""
        timeout = self._client.read_timeout_s
        since = self._waiting_since
        if since is None:
            self._arm(timeout)
            return
        waited = asyncio.get_running_loop().time() - since
        if waited >= timeout:
            self._watch = None
            self._conn.fail(httpx.ReadTimeout("no data in time"))
        else:
            self._arm(timeout - waited)

    async def _more(self) -> None:
        loop = asyncio.get_running_loop()
        if self._watch is None:
            self._arm(self._client.read_timeout_s)
        self._waiting_since = loop.time()
        try:
            await self._conn.readable()
        finally:
            self._waiting_since = None

    async def _pieces(self) -> AsyncIterator[bytes]:
        while True:
            piece = self._take()
            if piece:
                yield piece
            elif self._done:
                return
            else:
                await self._more()

    def _take(self) -> bytes:
        """What the buffer holds of the body now (b"" if nothing); sets ``_done`` at its end
        and raises ``RemoteProtocolError`` for bad framing or a connection closed inside it."""
        c = self._conn
        if self._chunked:
            piece = self._unchunk(c.buf)
        else:
            left = len(c.buf) if self._length is None else min(self._length, len(c.buf))
            piece = bytes(c.buf[:left])
            del c.buf[:left]
            if self._length is not None:
                self._length -= left
                self._done = self._reusable = self._length == 0
        if piece or self._done:
            return piece
        if c.exc is not None:
            raise c.exc
        if not c.eof:
            return b""
        if not self._chunked:
            if self._length is None:
                self._done = True  # read-until-close body: its end is the close
                return b""
            raise httpx.RemoteProtocolError("connection closed inside the body")
        if self._left <= 0:
            raise httpx.RemoteProtocolError("bad chunked framing")
        raise httpx.RemoteProtocolError("connection closed inside a chunk")

    def _unchunk(self, buf: bytearray) -> bytes:
        """The payload of the chunks in ``buf`` (the whole ones, and what is there of the last
        one), taken out of it; the last chunk and its trailers end the body."""
        pieces: list[bytes] = []
        while not self._done:
            if self._left > 0:
                take = min(self._left, len(buf))
                if take == 0:
                    break
                pieces.append(bytes(buf[:take]))
                del buf[:take]
                self._left -= take
                if self._left:
                    break
                self._left = -1
            if self._left < 0:
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise httpx.RemoteProtocolError("bad chunk end")
                del buf[:2]
                self._left = 0
            i = buf.find(b"\r\n")
            if i < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError("bad chunked framing")
                break
            size = _chunk_size(buf[:i])
            if size > 0:
                del buf[: i + 2]
                self._left = size
                continue
            end = buf.find(b"\r\n\r\n", i)  # trailers, up to the empty line
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError("bad chunked framing")
                break
            del buf[: end + 4]
            self._done = self._reusable = True
        return b"".join(pieces)

    async def push(self, sink: Callable[[bytes], bool]) -> bool:
        """Hand the body to ``sink`` as it arrives, from the transport's callbacks: each call
        gets what came of it (whole chunks joined). True once ``sink`` returned True: the rest of
        the body is then read in the background (within ``DRAIN_TIMEOUT_S``) and the connection
        released; False when the body ended first. Raises what ``aiter_bytes`` raises, and what
        ``sink`` raises. Either way the response is released (or being drained) on return."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[bool] = loop.create_future()
        c = self._conn

        def on_event() -> None:
            if result.done():  # the awaiting task was cancelled: nothing more is read
                c.on_event = None
                return
            self._waiting_since = loop.time()
            try:
                while piece := self._take():
                    if sink(piece):
                        result.set_result(True)
                        c.on_event = self._drain_event
                        self._drain_event()
                        return
                if self._done:
                    result.set_result(False)
                    c.on_event = None
            except Exception as e:  # noqa: BLE001 - handed to the awaiting task
                c.on_event = None
                result.set_exception(e)

        if self._watch is None:
            self._arm(self._client.read_timeout_s)
        c.on_event = on_event
        try:
            on_event()  # what came with the head
            return await result
        finally:
            if c.on_event is on_event:  # cancelled while streaming
                c.on_event = None
            if c.on_event is None:
                self.release()

    def _drain_event(self) -> None:
        """Push mode after the consumer's end: read to the body's end, then release."""
        c = self._conn
        try:
            while self._take():
                pass
            ended = self._done or c.eof
        except Exception:  # noqa: BLE001 - a broken end only costs the connection
            ended = True
        if ended:
            self.release()
            return
        if self._watch is not None:
            self._watch.cancel()
        self._watch = asyncio.get_running_loop().call_later(DRAIN_TIMEOUT_S, self._give_up)

    def _give_up(self) -> None:
        self._watch = None
        self._conn.on_event = None
        self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        c = self._conn
        c.on_event = None
        if self._done and self._reusable and self._keep and not c.buf and not c.eof:
            self._client.put_idle(c)
        else:
            c.close()


def _chunk_size(line: bytearray) -> int:
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise httpx.RemoteProtocolError("bad chunk size") from None
    if size < 0:
        raise httpx.RemoteProtocolError("bad chunk size")
    return size


class PlainHTTP1:
    """Keep-alive connections to one ``http://host:port`` origin."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_idle: int = 256,
        idle_expiry_s: float = 30.0,
    ) -> None:
        u = urlsplit(base_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError("PlainHTTP1 serves plain http:// origins only")
        self.host = u.hostname
        self.port = u.port or 80
        self.authority = u.netloc
        self.origin = f"http://{u.netloc}"
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_idle = max_idle
        self.idle_expiry_s = idle_expiry_s
        self._idle: list[_Conn] = []
        self.is_closed = False
        self.opened = 0  # connections ever opened

    def put_idle(self, conn: _Conn) -> None:
        if self.is_closed or len(self._idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def _take_idle(self) -> _Conn | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < self.idle_expiry_s and not conn.eof and not conn.buf:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(_Conn, self.host, self.port)
        except TimeoutError:
            raise httpx.ConnectTimeout("connect timeout") from None
        except OSError as e:
            raise httpx.ConnectError(type(e).__name__) from None
        self.opened += 1
        return conn

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Send the request and read the response head; the caller reads the body and then
        calls ``Response.release()`` (always, also on errors)."""
        path = url[len(self.origin) :] if url.startswith(self.origin) else url
        head = [f"POST {path} HTTP/1.1", f"host: {self.authority}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += ["content-type: application/json", f"content-length: {len(body)}", "", ""]
        request = "\r\n".join(head).encode("latin-1") + body
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._exchange(conn, request)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                conn.close()  # closed by the server while idle: once more on a new one
            except BaseException:
                conn.close()  # a timeout or a cancel: this connection's state is unknown
                raise
        conn = await self._connect()
        try:
            return await self._exchange(conn, request)
        except BaseException:
            conn.close()
            raise

    async def _exchange(self, conn: _Conn, request: bytes) -> Response:
        conn.write(request)
        buf = conn.buf
        try:
            async with asyncio.timeout(self.read_timeout_s):
                while (end := buf.find(b"\r\n\r\n")) < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise httpx.ReadError("LimitOverrunError")
                    if conn.eof and conn.exc is None:
                        raise httpx.ReadError("IncompleteReadError")
                    await conn.readable()
        except TimeoutError:
            raise httpx.ReadTimeout("no response in time") from None
        lines = buf[:end].decode("latin-1").split("\r\n")
        del buf[: end + 4]
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise httpx.RemoteProtocolError("bad status line") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = None if chunked else _length(headers)
        keep = "close" not in headers.get("connection", "").lower()
        return Response(status, headers, conn, chunked, length, self, keep)

    async def aclose(self) -> None:
        self.is_closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _length(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise httpx.RemoteProtocolError("bad content-length") from None
