"""OpenAI-compatible Chat Completions over SSE (OpenAI, vLLM, llama.cpp, Ollama, Together, Groq).

Wire format: ``POST {base_url}/chat/completions`` with ``stream: true`` and
``stream_options.include_usage``; each event is ``data: <chunk json>`` (no event names); the
usage arrives in a last chunk with empty ``choices``; ``data: [DONE]`` ends the stream. An object
with an ``error`` key (or vLLM's ``"object": "error"``) inside the stream is a failure.

``Finish`` is emitted at ``[DONE]`` (after the usage), so a stream cut after the finish reason
but before ``[DONE]`` is still reported as cut.
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


class OpenAIChatProvider(SSEProvider):
    """One OpenAI-compatible Chat Completions endpoint."""

    protocol = "openai"
    path = "/chat/completions"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    def decoder(self) -> StreamDecoder:
        return OpenAIStreamDecoder(self.name)

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
