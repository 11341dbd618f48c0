"""Anthropic Messages over SSE.

Wire format: ``POST {base_url}/messages`` with ``stream: true``, ``x-api-key`` and
``anthropic-version``; events are ``event: <type>`` + ``data: <json>``: message_start (input
usage), content_block_start/delta/stop (text in ``text_delta``), ping (anywhere), message_delta
(stop_reason, cumulative output tokens), message_stop (the terminal marker). ``event: error``
may arrive after HTTP 200 (e.g. ``overloaded_error``) and is classified by its type.

Continuation (``assistant_prefix``) uses prefill: the last message has the assistant role. The
API rejects a prefill ending in whitespace, so trailing whitespace is dropped from the prefix.
Input usage counts cache reads and cache writes as input tokens.
"""

from __future__ import annotations

from typing import Any

from dispatcher.providers.base import (
    Finish,
    ProviderRequest,
    StreamEvent,
    TextChunk,
    UsageUpdate,
)
from dispatcher.providers.classify import classify_stream_error, error_object, malformed
from dispatcher.providers.http_adapter import SSEProvider
from dispatcher.providers.sse import (
    SSEEvent,
    StreamDecoder,
    json_data,
    token_count,
)
from modelroute.domain import Role

API_VERSION = "2023-06-01"
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}
_INPUT_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class AnthropicStreamDecoder:
    """SSE events of one Messages stream -> TextChunk / UsageUpdate / Finish."""

    terminal_marker = "message_stop"

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self._input: int | None = None
        self._output: int | None = None
        self._stop: str | None = None

    def feed(self, ev: SSEEvent) -> list[StreamEvent]:
        obj = json_data(ev, self.provider)
        kind = obj.get("type", ev.event)
        if kind == "error" or ev.event == "error":
            raise classify_stream_error(self.provider, error_object(obj))
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                raise malformed("content_block_delta without delta", self.provider)
            text = delta.get("text") if delta.get("type") == "text_delta" else None
            return [TextChunk(text)] if isinstance(text, str) and text else []
        if kind == "message_start":
            message = obj.get("message")
            if not isinstance(message, dict):
                raise malformed("message_start without message", self.provider)
            return self._usage(message.get("usage"))
        if kind == "message_delta":
            delta = obj.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if isinstance(reason, str) and reason:
                self._stop = _FINISH.get(reason, "stop")
            return self._usage(obj.get("usage"))
        if kind == "message_stop":
            self.done = True
            return [Finish(self._stop or "stop")]
        return []

    def _usage(self, usage: object) -> list[StreamEvent]:
        if not isinstance(usage, dict):
            return []
        parts = [token_count(usage.get(k)) for k in _INPUT_KEYS]
        if parts[0] is not None:
            self._input = sum(p for p in parts if p is not None)
        out = token_count(usage.get("output_tokens"))
        if out is not None:
            self._output = out
        return [UsageUpdate(input_tokens=self._input, output_tokens=self._output)]


class AnthropicMessagesProvider(SSEProvider):
    """One Anthropic Messages endpoint."""

    protocol = "anthropic"
    path = "/messages"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def headers(self, req: ProviderRequest) -> dict[str, str]:
        h = super().headers(req)
        h["anthropic-version"] = API_VERSION
        return h

    def decoder(self) -> StreamDecoder:
        return AnthropicStreamDecoder(self.name)

    def body(self, req: ProviderRequest) -> dict[str, Any]:
        system = [m.content for m in req.messages if m.role is Role.SYSTEM]
        messages: list[dict[str, Any]] = [
            {"role": "assistant" if m.role is Role.ASSISTANT else "user", "content": m.content}
            for m in req.messages
            if m.role is not Role.SYSTEM
        ]
        if req.assistant_prefix is not None and req.assistant_prefix.rstrip():
            messages.append({"role": "assistant", "content": req.assistant_prefix.rstrip()})
        body: dict[str, Any] = {
            "model": req.model,
            "max_tokens": req.max_tokens,
            "messages": messages,
            "stream": True,
        }
        if system:
            body["system"] = "\n\n".join(system)
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.stop:
            body["stop_sequences"] = list(req.stop)
        return body
