"""Server-sent events over HTTP: an incremental parser, the pooled client, the request loop.

``SSEParser`` turns bytes, in chunks cut anywhere (inside a line, between CR and LF, inside a
UTF-8 sequence), into ``SSEEvent``s following the WHATWG event-stream rules: ``event:``,
``data:`` (several lines join with "\\n"), ``id:``, ``retry:``, comments (``:``), LF, CR or CRLF
line ends, one optional leading space after the colon, an event dispatched on an empty line and
only if it carried data, an unterminated event at end of stream dropped.

``open_sse`` POSTs a JSON body and yields the events of a 200 response; every other outcome
(HTTP status, connection failure, timeout, an unbounded line) becomes a ``ProviderError`` through
``dispatcher.providers.classify``. Protocol meaning (terminal markers, errors inside the stream)
is the adapters' job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from dispatcher.providers import http1
from dispatcher.providers.base import StreamEvent
from dispatcher.providers.classify import (
    classify_http_status,
    classify_transport,
    malformed,
    stream_cut,
)
from dispatcher.providers.http1 import PlainHTTP1, Response
from modelroute.config import ProviderConfig
from modelroute.errors import ProviderError

_BOM = "\ufeff"
# An SSE line longer than this is a broken stream, not a big answer chunk.
MAX_LINE_BYTES = 4 * 1024 * 1024
# After the terminal marker, wait at most this long for the body's end (connection reuse).
DRAIN_TIMEOUT_S = http1.DRAIN_TIMEOUT_S
# Error bodies are read up to this many bytes (enough for any JSON error object).
MAX_ERROR_BODY_BYTES = 64 * 1024
# httpcore's pool walks all its connections on every request start and end; at 100 concurrent
# streams that bookkeeping cost more CPU than parsing the streams (profiled). A provider spreads
# its streams over this many smaller pools instead of one big one.
POOL_SHARDS = 8
# Sized for 1,000 concurrent streams per provider (over all shards), with headroom; idle
# connections kept warm.
POOL_LIMITS = httpx.Limits(
    max_connections=1200 // POOL_SHARDS,
    max_keepalive_connections=256 // POOL_SHARDS,
    keepalive_expiry=30.0,
)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry_ms: int | None = None


@dataclass(slots=True)
class SSEParser:
    """Bytes in, events out. Feed chunks as they arrive; state carries across calls."""

    max_line_bytes: int = MAX_LINE_BYTES
    _buf: bytearray = field(default_factory=bytearray)
    _skip_lf: bool = False
    _started: bool = False
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _last_id: str | None = None
    _retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if (
            self._started
            and not self._buf
            and not self._skip_lf
            and not self._data
            and not self._event
            and chunk.endswith(b"\n\n")
            and b"\r" not in chunk
        ):
            whole = self._data_only(chunk)
            if whole is not None:
                return whole
        if self._skip_lf and chunk:
            # The previous chunk ended with CR: an LF starting this one belongs to that CRLF.
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        if self._buf:
            self._buf += chunk
            data = bytes(self._buf)
            self._buf.clear()
        else:
            data = chunk
        # bytes.splitlines splits on exactly LF, CR and CRLF, the SSE line ends.
        lines = data.splitlines()
        last = data[-1:]
        if last == b"\r":
            self._skip_lf = True
        elif last != b"\n":
            self._buf += lines.pop()
            if len(self._buf) > self.max_line_bytes:
                raise malformed("SSE line exceeds the size limit")
        events: list[SSEEvent] = []
        for line in lines:
            ev = self._line(line)
            if ev is not None:
                events.append(ev)
        return events

    def _data_only(self, chunk: bytes) -> list[SSEEvent] | None:
        """Whole events of one ``data: `` line each (what providers send), read without the
        line-by-line walk; None when the chunk holds anything else (the walk then reads it)."""
        events: list[SSEEvent] = []
        for block in chunk[:-2].split(b"\n\n"):
            if not block.startswith(b"data: ") or b"\n" in block:
                return None
            value = block[6:].decode("utf-8", errors="replace")
            events.append(SSEEvent(value, "message", self._last_id, self._retry_ms))
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if not self._started:
            self._started = True
            if line.startswith(_BOM):
                line = line[1:]
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isdigit():
            self._retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        ev = SSEEvent(
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._last_id,
            retry_ms=self._retry_ms,
        )
        self._data = []
        self._event = ""
        return ev


def new_http_client(
    config: ProviderConfig, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """One pooled client per provider: connect and stall (between-chunk) timeouts from config,
    HTTP/2 when the config allows it and the server negotiates it."""
    timeout = httpx.Timeout(
        connect=config.connect_timeout_ms / 1000,
        read=config.stall_timeout_ms / 1000,
        write=config.stall_timeout_ms / 1000,
        pool=config.connect_timeout_ms / 1000,
    )
    if config.http2:
        # The HPACK encoder logs header values at DEBUG level; keys travel in headers.
        logging.getLogger("hpack").setLevel(max(logging.INFO, logging.getLogger("hpack").level))
    if transport is not None:
        return httpx.AsyncClient(transport=transport, timeout=timeout)
    return httpx.AsyncClient(http2=config.http2, timeout=timeout, limits=POOL_LIMITS)


Client = httpx.AsyncClient | PlainHTTP1
_PROXY_ENV = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class ClientShards:
    """A provider's pooled clients; each stream leases the one with the fewest streams in
    flight (the first on ties, so sequential traffic reuses one warm connection)."""

    __slots__ = ("_busy", "clients")

    def __init__(self, clients: Sequence[Client]) -> None:
        self.clients = tuple(clients)
        self._busy = [0] * len(self.clients)

    @contextlib.contextmanager
    def lease(self) -> Iterator[Client]:
        busy = self._busy
        i = busy.index(min(busy))
        busy[i] += 1
        try:
            yield self.clients[i]
        finally:
            busy[i] -= 1

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()


def new_http_clients(
    config: ProviderConfig, transport: httpx.AsyncBaseTransport | None = None
) -> ClientShards:
    """``POOL_SHARDS`` pooled httpx clients for one provider (one when a test transport is
    given); a plain ``http://`` provider without HTTP/2 or a proxy gets the lean HTTP/1.1 client."""
    if transport is not None:
        return ClientShards([new_http_client(config, transport)])
    if (
        config.base_url.startswith("http://")
        and not config.http2
        and not any(os.environ.get(k) for k in _PROXY_ENV)
    ):
        plain = PlainHTTP1(
            config.base_url,
            connect_timeout_s=config.connect_timeout_ms / 1000,
            read_timeout_s=config.stall_timeout_ms / 1000,
        )
        return ClientShards([plain])
    return ClientShards([new_http_client(config) for _ in range(POOL_SHARDS)])


def open_sse(
    client: Client,
    url: str,
    *,
    provider: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
) -> AsyncGenerator[SSEEvent, None]:
    """POST ``body`` and yield the SSE events of the response; raise ProviderError otherwise.

    The caller decides whether the stream ended properly (its terminal marker). The generator
    of the client's kind is returned as it is (no wrapping layer on the per-chunk path)."""
    if isinstance(client, PlainHTTP1):
        return _plain_events(client, url, provider, headers, body)
    return _httpx_events(client, url, provider, headers, body)


async def _httpx_events(
    client: httpx.AsyncClient,
    url: str,
    provider: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
) -> AsyncGenerator[SSEEvent, None]:
    parser = SSEParser()
    try:
        async with client.stream("POST", url, headers=headers, json=body) as resp:
            if resp.status_code != 200:
                raw = await _read_bounded(resp)
                raise classify_http_status(provider, resp.status_code, resp.headers, raw)
            async for chunk in resp.aiter_bytes():
                for ev in parser.feed(chunk):
                    yield ev
    except httpx.HTTPError as e:
        raise classify_transport(provider, e) from None


async def _plain_events(
    client: PlainHTTP1,
    url: str,
    provider: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
) -> AsyncGenerator[SSEEvent, None]:
    parser = SSEParser()
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        resp = await client.post(url, headers, data)
        try:
            if resp.status_code != 200:
                raw = await _read_bounded(resp)
                raise classify_http_status(provider, resp.status_code, resp.headers, raw)
            async for chunk in resp.aiter_bytes():
                for ev in parser.feed(chunk):
                    yield ev
        finally:
            resp.release()
    except httpx.HTTPError as e:
        raise classify_transport(provider, e) from None


async def push_sse(client: PlainHTTP1, call: SSECall, emit: Callable[[StreamEvent], None]) -> None:
    """``decode_sse`` on the lean HTTP/1.1 client, pushed: each event of the answer goes to
    ``emit`` from the connection's callback as its bytes arrive (no task is woken per read).
    Returns once the decoder saw its terminal marker (the rest of the body is read in the
    background, for the connection's reuse); raises what ``decode_sse`` raises."""
    parser, decoder, provider = SSEParser(), call.decoder, call.provider

    def sink(piece: bytes) -> bool:
        for ev in parser.feed(piece):
            for out in decoder.feed(ev):
                emit(out)
            if decoder.done:
                return True
        return False

    data = json.dumps(call.body, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        resp = await client.post(call.url, call.headers, data)
        if resp.status_code != 200:
            try:
                raw = await _read_bounded(resp)
            finally:
                resp.release()
            raise classify_http_status(provider, resp.status_code, resp.headers, raw)
        ended = await resp.push(sink)
    except httpx.HTTPError as e:
        raise classify_transport(provider, e) from None
    if not ended:
        raise stream_cut(provider, decoder.terminal_marker)


async def _read_bounded(resp: httpx.Response | Response) -> bytes:
    out = bytearray()
    try:
        async for chunk in resp.aiter_bytes():
            out += chunk
            if len(out) >= MAX_ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        # The status alone classifies the error; what we read of the body is a bonus.
        return bytes(out)
    return bytes(out[:MAX_ERROR_BODY_BYTES])


class StreamDecoder(Protocol):
    """Protocol meaning of SSE events: events out, ``done`` once the terminal marker was seen."""

    done: bool
    terminal_marker: str

    def feed(self, ev: SSEEvent) -> list[StreamEvent]: ...


@dataclass(frozen=True, slots=True)
class SSECall:
    """One streaming request: where it goes, the provider (for errors), what it sends, and the
    decoder of its stream."""

    url: str
    provider: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    decoder: StreamDecoder


async def decode_sse(client: Client, call: SSECall) -> AsyncGenerator[StreamEvent, None]:
    """Run one streaming request through its decoder; a stream that ends before the decoder
    saw its terminal marker raises the "stream cut" ProviderError."""
    provider, decoder = call.provider, call.decoder
    events = open_sse(client, call.url, provider=provider, headers=call.headers, body=call.body)
    try:
        async for ev in events:
            for out in decoder.feed(ev):
                yield out
            if decoder.done:
                return
    finally:
        if decoder.done:
            await _drain(events)
        await events.aclose()
    raise stream_cut(provider, decoder.terminal_marker)


async def _drain(events: AsyncGenerator[SSEEvent, None]) -> None:
    """Read what follows the terminal marker (usually just the end of the chunked body), so the
    connection goes back to the pool instead of being dropped. Runs when the consumer closes the
    stream after the final event; bounded, and anything it reads is ignored."""
    with contextlib.suppress(TimeoutError, ProviderError):
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for _ in events:
                pass


def json_data(ev: SSEEvent, provider: str) -> dict[str, Any]:
    """The JSON object an event carries; anything else is a malformed stream."""
    try:
        obj = json.loads(ev.data)
    except ValueError:
        raise malformed("data is not JSON", provider) from None
    if not isinstance(obj, dict):
        raise malformed("data is not a JSON object", provider)
    return obj


def token_count(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None
