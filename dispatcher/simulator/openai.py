"""The OpenAI-compatible Chat Completions dialect (``POST /v1/chat/completions``).

Streaming: ``data: <chunk json>`` lines, no event names; the first chunk carries the role, the
last content chunk the finish_reason; with ``stream_options.include_usage`` every chunk has
``"usage": null`` and one final chunk has ``"choices": []`` and the usage; then ``data: [DONE]``.
"""

from __future__ import annotations

import hmac
import itertools
import json
import time
from collections.abc import Mapping
from typing import Any

from dispatcher.simulator.dialect import (
    CONTENT_FILTER,
    LENGTH,
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
FINISH = {LENGTH: "length", CONTENT_FILTER: "content_filter"}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request_error", message, param=param)


_FAULTS: dict[str, tuple[int, str, str, str | None]] = {
    "overloaded": (503, "server_error", "The server is overloaded or not ready yet.", None),
    "anthropic_overloaded": (529, "server_error", "The server is overloaded.", None),
    "internal": (
        500,
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    "bad_request": (
        400,
        "invalid_request_error",
        "Invalid value for 'messages': the request could not be parsed.",
        None,
    ),
    "unauthorized": (
        401,
        "invalid_request_error",
        "Incorrect API key provided. You can find your API key in your account settings.",
        "invalid_api_key",
    ),
    "forbidden": (
        403,
        "request_forbidden",
        "Country, region, or territory not supported",
        "unsupported_country_region_territory",
    ),
}


class _Frames:
    def __init__(self, req: SimRequest, rid: str, created: int) -> None:
        self._req = req
        self._id = rid
        self._base: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk"}
        self._base["created"] = created
        self._base |= {"model": req.model, "system_fingerprint": None}
        self._delta_parts: tuple[str, str] | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> bytes:
        obj: dict[str, Any] = dict(self._base)
        obj["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if self._req.include_usage:
            obj["usage"] = None
        return sse(_dumps(obj))

    def head(self) -> bytes:
        return self._chunk({"role": "assistant", "content": "", "refusal": None}, None)

    def delta(self, text: str) -> bytes:
        # The hot path: the chunk JSON around the text is built once per stream.
        if self._delta_parts is None:
            marker = "\u0000MARK\u0000"
            whole = self._chunk({"content": marker}, None).decode()
            head, _, tail = whole.partition(json.dumps(marker))
            self._delta_parts = (head, tail)
        head, tail = self._delta_parts
        return (head + json.dumps(text) + tail).encode()

    def tail(self, answer: Answer) -> bytes:
        out = self._chunk({}, FINISH.get(answer.finish, "stop"))
        if self._req.include_usage:
            obj: dict[str, Any] = dict(self._base)
            obj["choices"] = []
            obj["usage"] = _usage(self._req.input_tokens, answer.output_tokens)
            out += sse(_dumps(obj))
        return out + b"data: [DONE]\n\n"

    def error_event(self) -> bytes:
        err: dict[str, Any] = {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        return sse(_dumps({"error": err}))

    def malformed(self) -> bytes:
        return f'data: {{"id":"{self._id}","choices":[{{"delta":{{"conte\n\n'.encode()


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class OpenAIDialect:
    name = "openai"

    def parse(self, body: Any, headers: Mapping[str, str]) -> SimRequest:
        if not isinstance(body, dict):
            raise _bad("We could not parse the JSON body of your request.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad("'messages' must be a non-empty array", "messages")
        texts: list[str] = []
        prompt = ""
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise _bad(f"Invalid value for 'messages[{i}]'.", f"messages[{i}]")
            text = content_text(m.get("content"))
            texts.append(text)
            if m["role"] == "user":
                prompt = text
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        return SimRequest(
            model=model,
            prompt=prompt,
            input_tokens=conversation_tokens(texts),
            max_tokens=optional_int(body, "max_completion_tokens", "max_tokens"),
            stream=bool(body.get("stream")),
            include_usage=include_usage,
            stop=stop_list(body.get("stop"), "stop"),
        )

    def auth_ok(self, headers: Mapping[str, str], key: str) -> bool:
        return hmac.compare_digest(
            headers.get("authorization", "").encode(), f"Bearer {key}".encode()
        )

    def error_body(self, err: ApiError) -> Any:
        return {
            "error": {
                "message": err.message,
                "type": err.kind,
                "param": err.param,
                "code": err.code,
            }
        }

    def unauthorized(self) -> ApiError:
        status, kind, msg, code = _FAULTS["unauthorized"]
        return ApiError(status, kind, msg, code=code)

    def not_found(self, model: str) -> ApiError:
        msg = f"The model `{model}` does not exist or you do not have access to it."
        return ApiError(404, "invalid_request_error", msg, code="model_not_found")

    def context_overflow(self, model: str, input_tokens: int, window: int) -> ApiError:
        msg = (
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {input_tokens} tokens. Please reduce the length of the messages."
        )
        return ApiError(
            400, "invalid_request_error", msg, code="context_length_exceeded", param="messages"
        )

    def fault_error(self, fault: str, model: str, retry_after_s: int) -> ApiError:
        if fault == "rate_limit":
            msg = (
                f"Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, "
                f"Requested 1. Please try again in {retry_after_s}s."
            )
            headers = {
                "retry-after": str(retry_after_s),
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{retry_after_s}s",
            }
            return ApiError(429, "requests", msg, code="rate_limit_exceeded", headers=headers)
        status, kind, msg, code = _FAULTS[fault]
        return ApiError(status, kind, msg, code=code)

    def completion(self, req: SimRequest, answer: Answer) -> Any:
        message = {"role": "assistant", "content": answer.text, "refusal": None}
        return {
            "id": f"chatcmpl-sim{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": FINISH.get(answer.finish, "stop"),
                }
            ],
            "usage": _usage(req.input_tokens, answer.output_tokens),
        }

    def frames(self, req: SimRequest) -> _Frames:
        return _Frames(req, f"chatcmpl-sim{next(_ids)}", int(time.time()))

    def models_list(self, models: list[str]) -> Any:
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "modelroute-simulator"}
            for m in models
        ]
        return {"object": "list", "data": data}
