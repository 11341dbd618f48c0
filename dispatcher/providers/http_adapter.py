"""What the HTTP + SSE adapters share: the endpoint, the key, pooled clients, the stream loop.

A protocol adapter subclasses ``SSEProvider`` and supplies its path, its auth headers, the
request body and the decoder of its stream's meaning.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any, ClassVar

import httpx

from dispatcher.providers.base import ProviderRequest, StreamEvent, read_api_key
from dispatcher.providers.http1 import PlainHTTP1
from dispatcher.providers.sse import (
    ClientShards,
    SSECall,
    StreamDecoder,
    decode_sse,
    new_http_clients,
    push_sse,
)
from modelroute.config import ProviderConfig


class SSEProvider:
    """One endpoint; streams spread over pooled HTTP clients shared by all requests.

    ``client`` or ``transport`` is the test seam (``httpx.MockTransport``); the adapter owns its
    clients and closes them in ``aclose``."""

    protocol: ClassVar[str]
    path: ClassVar[str]

    def __init__(
        self,
        config: ProviderConfig,
        client: httpx.AsyncClient | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self._url = f"{config.base_url}{self.path}"
        self._key = read_api_key(config.api_key_env, os.environ if environ is None else environ)
        self._shards = (
            ClientShards([client]) if client is not None else new_http_clients(config, transport)
        )
        self._client = self._shards.clients[0]
        # Streams can be pushed (``stream_into``) when every client is the lean HTTP/1.1 one.
        self.pushes = all(isinstance(c, PlainHTTP1) for c in self._shards.clients)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.config.base_url!r})"

    def auth_headers(self, key: str) -> dict[str, str]:
        raise NotImplementedError

    def body(self, req: ProviderRequest) -> dict[str, Any]:
        raise NotImplementedError

    def decoder(self) -> StreamDecoder:
        raise NotImplementedError

    def headers(self, req: ProviderRequest) -> dict[str, str]:
        h = dict(req.extra_headers)
        h["accept"] = "text/event-stream"
        if self._key is not None:
            h.update(self.auth_headers(self._key.reveal()))
        if req.request_id:
            h.setdefault("x-request-id", req.request_id)
        return h

    def _call(self, req: ProviderRequest) -> SSECall:
        return SSECall(self._url, self.name, self.headers(req), self.body(req), self.decoder())

    async def stream(self, req: ProviderRequest) -> AsyncIterator[StreamEvent]:
        with self._shards.lease() as client:
            events = decode_sse(client, self._call(req))
            async with aclosing(events):
                async for ev in events:
                    yield ev

    async def stream_into(self, req: ProviderRequest, emit: Callable[[StreamEvent], None]) -> None:
        """The answer's events to ``emit`` as they arrive (only when ``pushes``)."""
        with self._shards.lease() as client:
            if not isinstance(client, PlainHTTP1):
                raise TypeError("stream_into needs the lean HTTP/1.1 client")
            await push_sse(client, self._call(req), emit)

    async def aclose(self) -> None:
        await self._shards.aclose()
