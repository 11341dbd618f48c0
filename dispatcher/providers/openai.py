"""OpenAI-compatible Chat Completions over SSE (OpenAI, vLLM, llama.cpp, Ollama, Together, Groq).

Wire format: ``POST {base_url}/chat/completions`` with ``stream: true`` and
``stream_options.include_usage``; each event is ``data: <chunk json>`` (no event names); the
usage arrives in a last chunk with empty ``choices``; ``data: [DONE]`` ends the stream. An object
with an ``error`` key (or vLLM's ``"object": "error"``) inside the stream is a failure.

``Finish`` is emitted at ``[DONE]`` (after the usage), so a stream cut after the finish reason
but before ``[DONE]`` is still reported as cut.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import httpx

from dispatcher.providers.base import (
    Finish,
    ProviderRequest,
    StreamEvent,
    TextChunk,
    UsageUpdate,
    read_api_key,
)
from dispatcher.providers.classify import classify_stream_error, error_object, malformed
from dispatcher.providers.sse import (
    ClientShards,
    SSEEvent,
    decode_sse,
    json_data,
    new_http_clients,
    token_count,
)
from modelroute.config import ProviderConfig
from modelroute.domain import ErrorClass, Role
from modelroute.errors import ProviderError

_ROLES = {Role.SYSTEM: "system", Role.USER: "user", Role.ASSISTANT: "assistant", Role.TOOL: "tool"}
_FINISH = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "stop",
    "function_call": "stop",
    "eos": "stop",
}


class OpenAIStreamDecoder:
    """SSE events of one Chat Completions stream -> TextChunk / UsageUpdate / Finish."""

    terminal_marker = "[DONE]"

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self._finish: str | None = None

    def feed(self, ev: SSEEvent) -> list[StreamEvent]:
        if ev.data.strip() == "[DONE]":
            self.done = True
            return [Finish(self._finish or "stop")]
        obj = json_data(ev, self.provider)
        if ev.event == "error" or "error" in obj or obj.get("object") == "error":
            raise classify_stream_error(self.provider, error_object(obj))
        out: list[StreamEvent] = []
        choices = obj.get("choices") or []
        if not isinstance(choices, list):
            raise malformed("choices is not a list", self.provider)
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                out.append(TextChunk(content))
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish = _FINISH.get(reason, "stop")
        usage = obj.get("usage")
        if isinstance(usage, dict):
            out.append(
                UsageUpdate(
                    input_tokens=token_count(usage.get("prompt_tokens")),
                    output_tokens=token_count(usage.get("completion_tokens")),
                )
            )
        return out


class OpenAIChatProvider:
    """One OpenAI-compatible endpoint; one pooled ``httpx.AsyncClient`` shared by all streams.

    ``client`` or ``transport`` is the test seam (``httpx.MockTransport``); the adapter owns the
    client and closes it in ``aclose``."""

    protocol = "openai"

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
        self._url = f"{config.base_url}/chat/completions"
        self._key = read_api_key(config.api_key_env, os.environ if environ is None else environ)
        self._shards = (
            ClientShards([client]) if client is not None else new_http_clients(config, transport)
        )
        self._client = self._shards.clients[0]

    def __repr__(self) -> str:
        return f"OpenAIChatProvider(name={self.name!r}, base_url={self.config.base_url!r})"

    def headers(self, req: ProviderRequest) -> dict[str, str]:
        h = dict(req.extra_headers)
        h["accept"] = "text/event-stream"
        if self._key is not None:
            h["authorization"] = f"Bearer {self._key.reveal()}"
        if req.request_id:
            h.setdefault("x-request-id", req.request_id)
        return h

    def body(self, req: ProviderRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for m in req.messages:
            msg: dict[str, Any] = {"role": _ROLES[m.role], "content": m.content}
            if m.name:
                msg["name"] = m.name
            messages.append(msg)
        body: dict[str, Any] = {
            "model": req.model,
            "messages": messages,
            "max_tokens": req.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if req.assistant_prefix is not None:
            if not self.config.supports_continuation:
                raise ProviderError(
                    ErrorClass.INVALID_REQUEST,
                    f"{self.name}: provider is not configured for continuation",
                )
            messages.append({"role": "assistant", "content": req.assistant_prefix})
            # vLLM-style servers continue the last assistant message instead of a new turn.
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.stop:
            body["stop"] = list(req.stop)
        return body

    async def stream(self, req: ProviderRequest) -> AsyncIterator[StreamEvent]:
        with self._shards.lease() as client:
            events = decode_sse(
                client,
                self._url,
                provider=self.name,
                headers=self.headers(req),
                body=self.body(req),
                decoder=OpenAIStreamDecoder(self.name),
            )
            async with aclosing(events):
                async for ev in events:
                    yield ev

    async def aclose(self) -> None:
        await self._shards.aclose()
