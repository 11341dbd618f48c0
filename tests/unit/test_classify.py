"""Every failure -> ErrorClass mapping, through the adapters over httpx.MockTransport, and the
guarantee that keys and prompt text never reach error messages, reprs or logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from dispatcher.providers.anthropic import AnthropicMessagesProvider
from dispatcher.providers.base import ProviderRequest, Secret, read_api_key
from dispatcher.providers.classify import classify_http_status, retry_after_s
from dispatcher.providers.openai import OpenAIChatProvider
from dispatcher.providers.registry import build_providers, close_providers
from modelroute.config import load_config
from modelroute.domain import ErrorClass, Message, Role
from modelroute.errors import ProviderError
from tests.unit.test_sse import an, chunk, config, oa, sse

KEY = "sk-classify-SECRET-4711"
PROMPT = "the confidential prompt text 9931"
REQ = ProviderRequest(model="m1", messages=(Message(Role.USER, PROMPT),), max_tokens=16)
Handler = Callable[[httpx.Request], httpx.Response]


def status(code: int, body: object = None, headers: dict[str, str] | None = None) -> Handler:
    content = body if isinstance(body, bytes) else json.dumps(body or {}).encode()

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(code, content=content, headers=headers)

    return handler


def raises(exc: Exception) -> Handler:
    def handler(_: httpx.Request) -> httpx.Response:
        raise exc

    return handler


async def failure(protocol: str, handler: Handler) -> ProviderError:
    cls = OpenAIChatProvider if protocol == "openai" else AnthropicMessagesProvider
    provider = cls(
        config(protocol), transport=httpx.MockTransport(handler), environ={"TEST_PROVIDER_KEY": KEY}
    )
    try:
        with pytest.raises(ProviderError) as info:
            _ = [ev async for ev in provider.stream(REQ)]
    finally:
        await provider.aclose()
    err = info.value
    for text in (str(err), repr(err), err.message, repr(provider)):
        assert KEY not in text
        assert PROMPT not in text
    return err


def oa_err(message: str, typ: str = "invalid_request_error", code: str | None = None) -> object:
    return {"error": {"message": message, "type": typ, "param": None, "code": code}}


def an_err(typ: str, message: str) -> object:
    return {"type": "error", "error": {"type": typ, "message": message}}


CASES: list[tuple[str, str, Handler, ErrorClass]] = [
    ("400", "openai", status(400, oa_err("bad param")), ErrorClass.INVALID_REQUEST),
    ("422", "openai", status(422, {"detail": "missing"}), ErrorClass.INVALID_REQUEST),
    (
        "openai overflow code",
        "openai",
        status(400, oa_err(f"too long: {PROMPT}", code="context_length_exceeded")),
        ErrorClass.CONTEXT_OVERFLOW,
    ),
    (
        "anthropic prompt too long",
        "anthropic",
        status(400, an_err("invalid_request_error", "prompt is too long: 210000 tokens > 200000")),
        ErrorClass.CONTEXT_OVERFLOW,
    ),
    (
        "vllm overflow",
        "openai",
        status(
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you "
                "requested 5000 tokens (4900 in the messages, 100 in the completion).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
        ErrorClass.CONTEXT_OVERFLOW,
    ),
    (
        "llama.cpp overflow",
        "openai",
        status(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                }
            },
        ),
        ErrorClass.CONTEXT_OVERFLOW,
    ),
    (
        "text overflow",
        "openai",
        status(422, b"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4097"),
        ErrorClass.CONTEXT_OVERFLOW,
    ),
    (
        "401",
        "openai",
        status(401, oa_err(f"Incorrect API key provided: {KEY}", code="invalid_api_key")),
        ErrorClass.AUTH,
    ),
    ("403", "anthropic", status(403, an_err("permission_error", "no")), ErrorClass.AUTH),
    (
        "429 quota",
        "openai",
        status(429, oa_err("quota", typ="insufficient_quota", code="insufficient_quota")),
        ErrorClass.AUTH,
    ),
    ("429", "anthropic", status(429, an_err("rate_limit_error", "slow")), ErrorClass.RATE_LIMITED),
    ("502", "openai", status(502, b"<html>bad gateway</html>"), ErrorClass.OVERLOADED),
    ("503", "openai", status(503, b""), ErrorClass.OVERLOADED),
    (
        "529",
        "anthropic",
        status(529, an_err("overloaded_error", "Overloaded")),
        ErrorClass.OVERLOADED,
    ),
    ("404", "openai", status(404, oa_err("no such model")), ErrorClass.OVERLOADED),
    ("504", "openai", status(504, b"gateway timeout"), ErrorClass.TIMEOUT),
    ("500", "anthropic", status(500, an_err("api_error", "oops")), ErrorClass.INTERNAL),
    ("599", "openai", status(599, b""), ErrorClass.INTERNAL),
    ("418", "openai", status(418, b""), ErrorClass.INVALID_REQUEST),
    ("redirect", "openai", status(301, b"", {"location": "/elsewhere"}), ErrorClass.OVERLOADED),
    ("204", "anthropic", status(204, b""), ErrorClass.OVERLOADED),
    (
        "content policy",
        "openai",
        status(400, oa_err("rejected by safety system", code="content_policy_violation")),
        ErrorClass.CONTENT_POLICY,
    ),
    (
        "refused",
        "openai",
        raises(httpx.ConnectError("[Errno 111] Connection refused")),
        ErrorClass.OVERLOADED,
    ),
    ("connect timeout", "openai", raises(httpx.ConnectTimeout("t")), ErrorClass.TIMEOUT),
    (
        "undecodable body",
        "openai",
        sse(oa(chunk("a")), then=httpx.DecodingError("bad gzip")),
        ErrorClass.INTERNAL,
    ),
    ("pool timeout", "anthropic", raises(httpx.PoolTimeout("t")), ErrorClass.TIMEOUT),
    (
        "stall",
        "openai",
        sse(oa(chunk("a")), then=httpx.ReadTimeout("read timed out")),
        ErrorClass.TIMEOUT,
    ),
    (
        "reset",
        "anthropic",
        sse(an("message_start", {"message": {}}), then=httpx.ReadError("reset")),
        ErrorClass.OVERLOADED,
    ),
    (
        "in-stream openai server_error",
        "openai",
        sse(oa(chunk("a")), oa(oa_err("boom", typ="server_error"))),
        ErrorClass.INTERNAL,
    ),
    (
        "in-stream openai rate limit",
        "openai",
        sse(oa(oa_err("slow down", typ="rate_limit_error"))),
        ErrorClass.RATE_LIMITED,
    ),
    (
        "in-stream vllm object error",
        "openai",
        sse(oa({"object": "error", "message": "x", "type": "InternalServerError", "code": 500})),
        ErrorClass.INTERNAL,
    ),
    (
        "in-stream anthropic overloaded",
        "anthropic",
        sse(
            an("content_block_delta", {"delta": {"type": "text_delta", "text": "x"}}),
            f"event: error\ndata: {json.dumps(an_err('overloaded_error', 'Overloaded'))}\n\n",
        ),
        ErrorClass.OVERLOADED,
    ),
    (
        "in-stream anthropic overflow",
        "anthropic",
        sse(
            f"event: error\ndata: {json.dumps(an_err('invalid_request_error', 'prompt is too long'))}\n\n"
        ),
        ErrorClass.CONTEXT_OVERFLOW,
    ),
]


@pytest.mark.parametrize(
    ("protocol", "handler", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_error_class(protocol: str, handler: Handler, expected: ErrorClass) -> None:
    err = await failure(protocol, handler)
    assert err.error_class is expected
    assert err.message.startswith(f"{protocol}-test: ")


async def test_status_and_type_in_message() -> None:
    err = await failure("anthropic", status(529, an_err("overloaded_error", "Overloaded")))
    assert err.status == 529
    assert err.message == "anthropic-test: HTTP 529 overloaded_error"


@pytest.mark.parametrize(
    ("frames", "detail"),
    [
        (("data: {not json\n\n",), "data is not JSON"),
        (("data: [1, 2]\n\n",), "data is not a JSON object"),
        ((oa({"choices": "nope"}),), "choices is not a list"),
    ],
)
async def test_malformed_stream(frames: tuple[str, ...], detail: str) -> None:
    err = await failure("openai", sse(*frames))
    assert err.error_class is ErrorClass.INTERNAL
    assert err.message == f"openai-test: malformed stream: {detail}"


async def test_anthropic_malformed_delta() -> None:
    err = await failure("anthropic", sse(an("content_block_delta", {"delta": "x"})))
    assert err.error_class is ErrorClass.INTERNAL
    assert "malformed stream" in err.message


async def test_stream_cut_without_done() -> None:
    err = await failure("openai", sse(oa(chunk("a", "stop"))))
    assert err.error_class is ErrorClass.OVERLOADED
    assert err.message == "openai-test: stream cut (no [DONE])"


async def test_stream_cut_without_message_stop() -> None:
    frames = an("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {}})
    err = await failure("anthropic", sse(frames))
    assert err.error_class is ErrorClass.OVERLOADED
    assert err.message == "anthropic-test: stream cut (no message_stop)"


async def test_connection_closed_mid_stream_is_a_cut() -> None:
    err = await failure(
        "openai",
        sse(oa(chunk("a")), then=httpx.RemoteProtocolError("peer closed connection")),
    )
    assert err.error_class is ErrorClass.OVERLOADED
    assert "stream cut" in err.message


def test_retry_after_forms() -> None:
    now = 1_800_000_000.0
    assert retry_after_s({"retry-after": "3"}, now) == 3.0
    assert retry_after_s({"retry-after": "1.5"}, now) == 1.5
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}, now) == 0.25
    date = format_datetime(datetime.fromtimestamp(now + 42, UTC), usegmt=True)
    assert retry_after_s({"retry-after": date}, now) == pytest.approx(42.0)
    past = format_datetime(datetime.fromtimestamp(now - 42, UTC), usegmt=True)
    assert retry_after_s({"retry-after": past}, now) == 0.0
    assert retry_after_s({"retry-after": "soon"}, now) is None
    assert retry_after_s({"retry-after": "-5"}, now) == 0.0
    assert retry_after_s({}, now) is None


async def test_429_carries_retry_after_through_the_adapter() -> None:
    err = await failure("openai", status(429, oa_err("slow"), {"retry-after": "7"}))
    assert err.error_class is ErrorClass.RATE_LIMITED
    assert err.retry_after_s == 7.0
    assert err.status == 429
    err = await failure("anthropic", status(429, b"", {"retry-after-ms": "1500"}))
    assert err.retry_after_s == 1.5


def test_retry_after_only_for_backoff_statuses() -> None:
    err = classify_http_status("p", 400, {"retry-after": "5"}, b"")
    assert err.retry_after_s is None
    err = classify_http_status("p", 503, {"retry-after": "5"}, b"")
    assert err.retry_after_s == 5.0


def test_secret_never_shows() -> None:
    s = read_api_key("K", {"K": KEY})
    assert isinstance(s, Secret)
    assert s.reveal() == KEY
    assert KEY not in repr(s)
    assert KEY not in str(s)
    assert KEY not in f"{s}"
    assert read_api_key("K", {}) is None
    assert read_api_key(None, {"K": KEY}) is None


async def test_keys_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Every path, success and failure, with DEBUG logging on everywhere: no key, no prompt."""
    ok = sse(oa(chunk("a", "stop")), "data: [DONE]\n\n")
    handlers = [ok, *(c[2] for c in CASES if c[1] == "openai")]
    with caplog.at_level(logging.DEBUG):
        for h in handlers:
            provider = OpenAIChatProvider(
                config("openai"),
                transport=httpx.MockTransport(h),
                environ={"TEST_PROVIDER_KEY": KEY},
            )
            try:
                _ = [ev async for ev in provider.stream(REQ)]
            except ProviderError as e:
                logging.getLogger("modelroute.test").warning("attempt failed: %s (%r)", e, e)
            logging.getLogger("modelroute.test").debug("provider %r", provider)
            await provider.aclose()
    assert caplog.records, "debug logging captured nothing"
    assert any("attempt failed" in r.getMessage() for r in caplog.records)
    for r in caplog.records:
        assert KEY not in r.getMessage()
        assert PROMPT not in r.getMessage()
    assert KEY not in caplog.text


def test_unread_error_body_still_classifies() -> None:
    err = classify_http_status("p", 500, {}, b"\xff\xfe not json or utf-8")
    assert err.error_class is ErrorClass.INTERNAL


async def test_registry_warns_on_missing_key_by_name_only(caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config()
    with caplog.at_level(logging.DEBUG):
        without = build_providers(cfg, environ={})
        with_key = build_providers(
            cfg, environ={p.api_key_env: KEY for p in cfg.providers.values() if p.api_key_env}
        )
    await close_providers(without)
    await close_providers(with_key)
    kinds = {name: type(p) for name, p in with_key.items()}
    assert kinds == {
        name: OpenAIChatProvider if pc.protocol == "openai" else AnthropicMessagesProvider
        for name, pc in cfg.providers.items()
    }
    warnings = [r.getMessage() for r in caplog.records if r.name == "modelroute.providers"]
    assert len(warnings) == len(cfg.providers)  # only the build without keys warned
    assert all("MODELROUTE_SIMULATOR_KEY is not set" in w for w in warnings)
    assert KEY not in caplog.text
