"""A lean keep-alive HTTP/1.1 client for streaming POSTs to one plain ``http://`` origin.

Local inference servers (vLLM, llama.cpp, Ollama) and the provider simulator speak plain
HTTP/1.1. For them the dispatcher skips httpx: at 100 concurrent streams its per-chunk layers
(pool bookkeeping, a cancel scope per read, h11) cost about 3x the CPU of reading the socket
directly (``loadtest/bench_relay.py``: relay-httpx vs relay-raw). HTTPS, HTTP/2 and proxies
stay on httpx (``dispatcher.providers.sse.new_http_clients`` chooses).

Failures are raised as the httpx exceptions ``classify_transport`` already maps (connect
timeout, connect error, read timeout = stall, connection cut), so both paths classify alike. The
body is read in pieces of up to 64 KiB and chunked framing is parsed from a buffer, so one read
that holds several SSE events costs one wake-up. A connection goes back to the idle list only
after its body was read to the end; a request that fails on a reused idle connection before any
response byte (the server closed it meanwhile) is retried once on a new connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

READ_BYTES = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024


@dataclass(eq=False, slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    buf: bytearray = field(default_factory=bytearray)

    def close(self) -> None:
        self.writer.close()


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
    # The stall watch: one timer per response instead of a timeout around every read (that
    # was a timer armed and cancelled per chunk). ``_waiting_since`` is set while a read waits.
    _waiting_since: float | None = None
    _watch: asyncio.TimerHandle | None = None

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, as it arrives; the connection is reusable once this ends normally."""
        return self._chunks() if self._chunked else self._sized()

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
            self._conn.reader.set_exception(httpx.ReadTimeout("no data in time"))
        else:
            self._arm(timeout - waited)

    async def _more(self) -> bool:
        c = self._conn
        loop = asyncio.get_running_loop()
        if self._watch is None:
            self._arm(self._client.read_timeout_s)
        self._waiting_since = loop.time()
        try:
            data = await c.reader.read(READ_BYTES)
        except OSError as e:
            raise httpx.ReadError(type(e).__name__) from None
        finally:
            self._waiting_since = None
        if not data:
            return False
        c.buf += data
        return True

    async def _sized(self) -> AsyncIterator[bytes]:
        left, buf = self._length, self._conn.buf
        while left is None or left > 0:
            if not buf and not await self._more():
                if left is None:
                    self._done = True
                    return  # read-until-close body: its end is the close
                raise httpx.RemoteProtocolError("connection closed inside the body")
            take = len(buf) if left is None else min(left, len(buf))
            piece = bytes(buf[:take])
            del buf[:take]
            if left is not None:
                left -= take
            yield piece
        self._done = self._reusable = True

    async def _line(self) -> bytes:
        buf = self._conn.buf
        while (i := buf.find(b"\r\n")) < 0:
            if len(buf) > MAX_HEAD_BYTES or not await self._more():
                raise httpx.RemoteProtocolError("bad chunked framing")
        line = bytes(buf[:i])
        del buf[: i + 2]
        return line

    def _whole_chunks(self) -> bytes:
        """The payloads of the complete chunks at the head of the buffer, taken out of it (b""
        when the buffer does not start with one). A read that holds one or more whole chunks
        (the usual case for SSE) then costs one yield and no further await."""
        buf = self._conn.buf
        pieces: list[bytes] = []
        while (i := buf.find(b"\r\n")) >= 0:
            try:
                size = int(buf[:i].split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise httpx.RemoteProtocolError("bad chunk size") from None
            if size < 0:
                raise httpx.RemoteProtocolError("bad chunk size")
            end = i + 2 + size
            if size == 0 or len(buf) < end + 2:
                break
            if buf[end : end + 2] != b"\r\n":
                raise httpx.RemoteProtocolError("bad chunk end")
            pieces.append(bytes(buf[i + 2 : end]))
            del buf[: end + 2]
        return b"".join(pieces)

    async def _chunks(self) -> AsyncIterator[bytes]:
        buf = self._conn.buf
        while True:
            if whole := self._whole_chunks():
                yield whole
                continue
            if buf.find(b"\r\n") < 0:  # no size line yet: read, then look again
                if len(buf) > MAX_HEAD_BYTES or not await self._more():
                    raise httpx.RemoteProtocolError("bad chunked framing")
                continue
            # the last chunk, or one that is not complete yet: piece by piece
            try:
                size = int((await self._line()).split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise httpx.RemoteProtocolError("bad chunk size") from None
            if size == 0:
                while await self._line():  # trailers, up to the empty line
                    pass
                self._done = self._reusable = True
                return
            while size > 0:
                if not buf and not await self._more():
                    raise httpx.RemoteProtocolError("connection closed inside a chunk")
                take = min(size, len(buf))
                piece = bytes(buf[:take])
                del buf[:take]
                size -= take
                yield piece
            if await self._line() != b"":
                raise httpx.RemoteProtocolError("bad chunk end")

    def release(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._done and self._reusable and self._keep and not self._conn.buf:
            self._client.put_idle(self._conn)
        else:
            self._conn.close()


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
            if now - conn.idle_since < self.idle_expiry_s and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            raise httpx.ConnectTimeout("connect timeout") from None
        except OSError as e:
            raise httpx.ConnectError(type(e).__name__) from None
        self.opened += 1
        return _Conn(reader, writer)

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
        try:
            conn.writer.write(request)
            async with asyncio.timeout(self.read_timeout_s):
                raw = await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise httpx.ReadTimeout("no response in time") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            raise httpx.ReadError(type(e).__name__) from None
        lines = raw.decode("latin-1").split("\r\n")
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
