"""The Anthropic Messages dialect (``POST /anthropic/v1/messages``).

Streaming: ``event:`` + ``data:`` pairs: message_start (input usage), content_block_start, ping,
content_block_delta (text_delta) ..., content_block_stop, message_delta (stop_reason, cumulative
output_tokens), message_stop. An assistant message as the last message is a prefill: the answer
continues it and the response holds only the continuation.
"""

from __future__ import annotations

import hmac
import itertools
import json
from collections.abc import Mapping
from typing import Any

from dispatcher.simulator.dialect import (
    CONTENT_FILTER,
    LENGTH,
    STOP_SEQUENCE,
    Answer,
    ApiError,
    SimRequest,
    content_text,
    conversation_tokens,
    optional_int,
    sse,
    stop_list,
)

_ids = itertools.count(1)
STOP_REASON = {LENGTH: "max_tokens", STOP_SEQUENCE: "stop_sequence", CONTENT_FILTER: "refusal"}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


_FAULTS: dict[str, tuple[int, str, str]] = {
    "overloaded": (503, "overloaded_error", "Overloaded"),
    "anthropic_overloaded": (529, "overloaded_error", "Overloaded"),
    "internal": (500, "api_error", "Internal server error"),
    "bad_request": (400, "invalid_request_error", "messages: the request could not be parsed"),
    "unauthorized": (401, "authentication_error", "invalid x-api-key"),
    "forbidden": (403, "permission_error", "Your API key does not have permission to use it."),
}


_DELTA_HEAD = (
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
)
_DELTA_TAIL = b"}}\n\n"


class _Frames:
    def __init__(self, req: SimRequest, mid: str) -> None:
        self._req = req
        self._id = mid

    def head(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._req.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._req.input_tokens, "output_tokens": 1},
        }
        block = {"type": "content_block_start", "index": 0}
        block["content_block"] = {"type": "text", "text": ""}
        return (
            sse(_dumps({"type": "message_start", "message": message}), "message_start")
            + sse(_dumps(block), "content_block_start")
            + sse('{"type":"ping"}', "ping")
        )

    def delta(self, text: str) -> bytes:
        return b"".join((_DELTA_HEAD, json.dumps(text).encode(), _DELTA_TAIL))

    def tail(self, answer: Answer) -> bytes:
        delta = {
            "stop_reason": STOP_REASON.get(answer.finish, "end_turn"),
            "stop_sequence": answer.stop_sequence,
        }
        usage = {"output_tokens": answer.output_tokens}
        return (
            sse('{"type":"content_block_stop","index":0}', "content_block_stop")
            + sse(
                _dumps({"type": "message_delta", "delta": delta, "usage": usage}), "message_delta"
            )
            + sse('{"type":"message_stop"}', "message_stop")
        )

    def error_event(self) -> bytes:
        err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return sse(_dumps(err), "error")

    def malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"del\n\n'


class AnthropicDialect:
    name = "anthropic"

    def parse(self, body: Any, headers: Mapping[str, str]) -> SimRequest:
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("model: Field required")
        max_tokens = optional_int(body, "max_tokens")
        if max_tokens is None:
            raise _bad("max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad("messages: at least one message is required")
        system = content_text(body.get("system"))
        texts = [system] if system else []
        prompt = ""
        prefix: str | None = None
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ("user", "assistant"):
                raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            text = content_text(m.get("content"))
            texts.append(text)
            if role == "user":
                prompt = text
            elif i == len(messages) - 1:
                prefix = text
        if prefix is not None and prefix != prefix.rstrip():
            raise _bad("messages: final assistant content cannot end with trailing whitespace")
        return SimRequest(
            model=model,
            prompt=prompt,
            input_tokens=conversation_tokens(texts),
            max_tokens=max_tokens,
            stream=bool(body.get("stream")),
            stop=stop_list(body.get("stop_sequences"), "stop_sequences"),
            prefix=prefix or None,
        )

    def auth_ok(self, headers: Mapping[str, str], key: str) -> bool:
        # x-api-key, or a bearer token (what recent official SDKs send).
        given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        return hmac.compare_digest(given.encode(), key.encode())

    def error_body(self, err: ApiError) -> Any:
        return {"type": "error", "error": {"type": err.kind, "message": err.message}}

    def unauthorized(self) -> ApiError:
        status, kind, msg = _FAULTS["unauthorized"]
        return ApiError(status, kind, msg)

    def not_found(self, model: str) -> ApiError:
        return ApiError(404, "not_found_error", f"model: {model}")

    def context_overflow(self, model: str, input_tokens: int, window: int) -> ApiError:
        msg = f"prompt is too long: {input_tokens} tokens > {window} maximum"
        return ApiError(400, "invalid_request_error", msg)

    def fault_error(self, fault: str, model: str, retry_after_s: int) -> ApiError:
        if fault == "rate_limit":
            msg = "Number of request tokens has exceeded your per-minute rate limit."
            headers = {
                "retry-after": str(retry_after_s),
                "anthropic-ratelimit-requests-limit": "3",
                "anthropic-ratelimit-requests-remaining": "0",
            }
            return ApiError(429, "rate_limit_error", msg, headers=headers)
        status, kind, msg = _FAULTS[fault]
        return ApiError(status, kind, msg)

    def completion(self, req: SimRequest, answer: Answer) -> Any:
        return {
            "id": f"msg_sim{next(_ids):08d}",
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": [{"type": "text", "text": answer.text}],
            "stop_reason": STOP_REASON.get(answer.finish, "end_turn"),
            "stop_sequence": answer.stop_sequence,
            "usage": {"input_tokens": req.input_tokens, "output_tokens": answer.output_tokens},
        }

    def frames(self, req: SimRequest) -> _Frames:
        return _Frames(req, f"msg_sim{next(_ids):08d}")

    def models_list(self, models: list[str]) -> Any:
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m,
                "created_at": "2023-11-06T00:00:00Z",
            }
            for m in models
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
