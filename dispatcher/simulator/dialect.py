"""What the two wire protocols share: the parsed request, API errors, and the dialect interface.

A dialect (``openai.py``, ``anthropic.py``) parses its request JSON into a ``SimRequest``, renders
errors in the provider's own body shape, and renders a replayed answer as a complete response or
as SSE frames. The server (``server.py``) owns replay, timing and faults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.signals.tokens import PER_CONVERSATION_TOKENS, PER_MESSAGE_TOKENS, count_text_tokens

# Generic finish reasons; each dialect maps them to its own words.
STOP = "stop"
LENGTH = "length"
STOP_SEQUENCE = "stop_sequence"
CONTENT_FILTER = "content_filter"


class ApiError(Exception):
    """An HTTP error response in the provider's shape (the dialect renders the body)."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class SimRequest:
    model: str
    prompt: str  # the text replay matches on: the last user message
    input_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool = False
    stop: tuple[str, ...] = ()
    prefix: str | None = None  # an assistant prefill the answer continues
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer:
    """The text to send, its token count, and why it ends."""

    text: str
    output_tokens: int
    finish: str
    stop_sequence: str | None = None


class StreamFrames(Protocol):
    """SSE frames of one streamed answer, in order: head, deltas, tail."""

    def head(self) -> bytes: ...
    def delta(self, text: str) -> bytes: ...
    def tail(self, answer: Answer) -> bytes: ...
    def error_event(self) -> bytes: ...
    def malformed(self) -> bytes: ...


class Dialect(Protocol):
    name: str

    def parse(self, body: Any, headers: Mapping[str, str]) -> SimRequest: ...
    def auth_ok(self, headers: Mapping[str, str], key: str) -> bool: ...
    def error_body(self, err: ApiError) -> Any: ...
    def unauthorized(self) -> ApiError: ...
    def not_found(self, model: str) -> ApiError: ...
    def context_overflow(self, model: str, input_tokens: int, window: int) -> ApiError: ...
    def fault_error(self, fault: str, model: str, retry_after_s: int) -> ApiError: ...
    def completion(self, req: SimRequest, answer: Answer) -> Any: ...
    def frames(self, req: SimRequest) -> StreamFrames: ...
    def models_list(self, models: list[str]) -> Any: ...


def content_text(content: Any) -> str:
    """Text of a message content: a string, or a list of blocks/parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif isinstance(block, str):
                parts.append(block)
        return "".join(parts)
    return ""


def conversation_tokens(texts: list[str]) -> int:
    """Input tokens of a conversation: its texts plus per-message and per-request overhead."""
    return PER_CONVERSATION_TOKENS + sum(PER_MESSAGE_TOKENS + count_text_tokens(t) for t in texts)


def sse(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


def optional_int(body: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ApiError(
                400, "invalid_request_error", f"{name}: must be a positive integer", param=name
            )
        return value
    return None


def stop_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v)
    raise ApiError(400, "invalid_request_error", f"{name}: must be a string or list", param=name)
