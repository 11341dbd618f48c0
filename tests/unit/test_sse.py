"""SSE parsing with awkward chunk boundaries, and the adapters' stream decoding (text, usage,
finish reasons, continuation bodies) through httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from dispatcher.providers.anthropic import AnthropicMessagesProvider
from dispatcher.providers.base import (
    Finish,
    ProviderRequest,
    StreamEvent,
    TextChunk,
    UsageUpdate,
)
from dispatcher.providers.openai import OpenAIChatProvider
from dispatcher.providers.sse import SSEEvent, SSEParser
from modelroute.config import ProviderConfig
from modelroute.domain import ErrorClass, Message, Role
from modelroute.errors import ProviderError


def parse_in_chunks(raw: bytes, cuts: list[int]) -> list[SSEEvent]:
    p = SSEParser()
    out: list[SSEEvent] = []
    prev = 0
    for c in [*cuts, len(raw)]:
        out += p.feed(raw[prev:c])
        prev = c
    return out


def every_split(raw: bytes) -> Iterator[list[int]]:
    for i in range(len(raw) + 1):
        yield [i]
    for i in range(0, len(raw) + 1, 3):
        for j in range(i, len(raw) + 1, 5):
            yield [i, j]


STREAM = (
    ": keep-alive comment\r\n"
    "event: message_start\r\n"
    'data: {"a": 1}\r\n'
    "\r\n"
    "data: line one\n"
    "data:line two\n"
    "data\n"
    "id: 7\n"
    "\n"
    "event: ping\r"
    "data: é€😀\r"
    "\r"
    "retry: 1500\n"
    "data:  two spaces\n\n"
).encode()
EXPECTED = [
    SSEEvent(data='{"a": 1}', event="message_start"),
    SSEEvent(data="line one\nline two\n", id="7"),
    SSEEvent(data="é€😀", event="ping", id="7"),
    SSEEvent(data=" two spaces", id="7", retry_ms=1500),
]


def test_whole_stream() -> None:
    assert SSEParser().feed(STREAM) == EXPECTED


def test_every_chunk_boundary_gives_the_same_events() -> None:
    for cuts in every_split(STREAM):
        assert parse_in_chunks(STREAM, cuts) == EXPECTED, cuts


def test_byte_by_byte() -> None:
    p = SSEParser()
    out: list[SSEEvent] = []
    for i in range(len(STREAM)):
        out += p.feed(STREAM[i : i + 1])
    assert out == EXPECTED


def test_cr_then_lf_in_next_chunk_is_one_line_end() -> None:
    p = SSEParser()
    assert p.feed(b"data: a\r") == []
    assert p.feed(b"\ndata: b\r") == []
    assert p.feed(b"\n\r\n") == [SSEEvent(data="a\nb")]


def test_event_without_data_is_not_dispatched_and_name_resets() -> None:
    assert SSEParser().feed(b"event: lonely\n\ndata: x\n\n") == [SSEEvent(data="x")]


def test_unterminated_event_at_end_is_not_dispatched() -> None:
    p = SSEParser()
    assert p.feed(b"data: complete\n\ndata: partial\n") == [SSEEvent(data="complete")]
    assert p.feed(b"") == []


def test_bom_and_unknown_fields() -> None:
    raw = "\ufeffdata: x\nfoo: bar\nid: a\0b\n\n".encode()
    assert SSEParser().feed(raw) == [SSEEvent(data="x")]


def test_unbounded_line_is_malformed() -> None:
    p = SSEParser(max_line_bytes=100)
    with pytest.raises(ProviderError) as e:
        p.feed(b"data: " + b"x" * 200)
    assert e.value.error_class is ErrorClass.INTERNAL
    assert "malformed stream" in e.value.message


def test_whole_data_events_per_chunk_read_like_the_line_walk() -> None:
    """Chunks of whole ``data: `` events (what providers send) take the parser's short cut;
    the events equal those of the same bytes fed one byte at a time (the line walk), with the
    id and retry of earlier events carried and other fields falling back to the walk."""
    chunks = [
        b"id: 3\nretry: 20\ndata: first\n\n",
        b"data: a\n\n",
        b"data: b\n\ndata: c\n\n",
        b'data: {"x": "\xc3\xa9\xff"}\n\n',
        b"data: two\ndata: lines\n\n",
        b"event: ping\ndata: named\n\n",
        b"data: d\n\n\n\n",
        b"data:no space\n\n",
        b"data: e\r\n\r\n",
        b"data: f\n\n",
    ]
    fast = SSEParser()
    got = [ev for c in chunks for ev in fast.feed(c)]
    walk = SSEParser()
    raw = b"".join(chunks)
    want = [ev for i in range(len(raw)) for ev in walk.feed(raw[i : i + 1])]
    assert got == want
    assert [e.data for e in got[:4]] == ["first", "a", "b", "c"]
    assert got[1] == SSEEvent(data="a", id="3", retry_ms=20)
    assert got[4].data == '{"x": "\xe9\ufffd"}'


def test_a_partial_line_before_whole_events_is_not_skipped() -> None:
    p = SSEParser()
    assert p.feed(b"data: x\n\n") == [SSEEvent(data="x")]
    assert p.feed(b"data: par") == []
    assert p.feed(b"tial\n\n") == [SSEEvent(data="partial")]
    assert p.feed(b"data: next\n\n") == [SSEEvent(data="next")]


# --- adapters over MockTransport ------------------------------------------------------------


def config(protocol: str, *, continuation: bool = False) -> ProviderConfig:
    return ProviderConfig(
        name=f"{protocol}-test",
        protocol=protocol,
        base_url="http://upstream.test/v1",
        api_key_env="TEST_PROVIDER_KEY",
        connect_timeout_ms=1000,
        stall_timeout_ms=1000,
        http2=False,
        supports_continuation=continuation,
    )


REQ = ProviderRequest(
    model="m1",
    messages=(Message(Role.SYSTEM, "be brief"), Message(Role.USER, "hello")),
    max_tokens=64,
    temperature=0.5,
    stop=("END",),
    request_id="req-1",
    extra_headers={"x-sim-fault": "none"},
)


class Chunks(httpx.AsyncByteStream):
    """A response body delivered in the given chunks, then optionally a transport error."""

    def __init__(self, chunks: list[bytes], then: Exception | None = None) -> None:
        self.chunks = chunks
        self.then = then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c
        if self.then is not None:
            raise self.then


def sse(
    *frames: str, split: int = 7, then: Exception | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering 200 with the frames, delivered in small uneven chunks."""
    raw = "".join(frames).encode()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        chunks = [raw[i : i + split] for i in range(0, len(raw), split)]
        return httpx.Response(200, stream=Chunks(chunks, then))

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


def oa(obj: object) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def an(kind: str, obj: dict[str, object]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **obj})}\n\n"


async def collect(provider: OpenAIChatProvider | AnthropicMessagesProvider) -> list[StreamEvent]:
    try:
        return [ev async for ev in provider.stream(REQ)]
    finally:
        await provider.aclose()


def openai_provider(
    handler: Callable[[httpx.Request], httpx.Response], continuation: bool = False
) -> OpenAIChatProvider:
    return OpenAIChatProvider(
        config("openai", continuation=continuation),
        transport=httpx.MockTransport(handler),
        environ={"TEST_PROVIDER_KEY": "sk-unit-test"},
    )


def anthropic_provider(
    handler: Callable[[httpx.Request], httpx.Response],
) -> AnthropicMessagesProvider:
    return AnthropicMessagesProvider(
        config("anthropic"),
        transport=httpx.MockTransport(handler),
        environ={"TEST_PROVIDER_KEY": "sk-unit-test"},
    )


def chunk(content: str | None, finish: str | None = None) -> dict[str, object]:
    return {
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
        "usage": None,
    }


OPENAI_OK = (
    oa({"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}),
    oa(chunk("Hel")),
    ": comment\n\n",
    oa(chunk("lo")),
    oa(chunk(None, "length")),
    oa({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2}}),
    "data: [DONE]\n\n",
)


async def test_openai_text_usage_finish_and_request_shape() -> None:
    handler = sse(*OPENAI_OK)
    events = await collect(openai_provider(handler))
    assert events == [
        TextChunk("Hel"),
        TextChunk("lo"),
        UsageUpdate(input_tokens=12, output_tokens=2),
        Finish("length"),
    ]
    (request,) = handler.seen  # type: ignore[attr-defined]
    assert request.url == "http://upstream.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-unit-test"
    assert request.headers["x-sim-fault"] == "none"
    assert request.headers["x-request-id"] == "req-1"
    body = json.loads(request.content)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert body["max_tokens"] == 64
    assert body["temperature"] == 0.5
    assert body["stop"] == ["END"]
    assert "continue_final_message" not in body


@pytest.mark.parametrize(
    ("raw", "norm"),
    [("stop", "stop"), ("content_filter", "content_filter"), ("tool_calls", "stop")],
)
async def test_openai_finish_reasons_normalized(raw: str, norm: str) -> None:
    handler = sse(oa(chunk("x", raw)), "data: [DONE]\n\n")
    assert (await collect(openai_provider(handler)))[-1] == Finish(norm)


async def test_openai_continuation_only_when_configured() -> None:
    req = ProviderRequest(model="m1", messages=REQ.messages, max_tokens=8, assistant_prefix="Par")
    handler = sse(oa(chunk("tial", "stop")), "data: [DONE]\n\n")
    p = openai_provider(handler, continuation=True)
    events = [ev async for ev in p.stream(req)]
    await p.aclose()
    assert events == [TextChunk("tial"), Finish("stop")]
    body = json.loads(handler.seen[0].content)  # type: ignore[attr-defined]
    assert body["messages"][-1] == {"role": "assistant", "content": "Par"}
    assert body["continue_final_message"] is True
    assert body["add_generation_prompt"] is False

    plain = openai_provider(sse("data: [DONE]\n\n"))
    with pytest.raises(ProviderError) as e:
        _ = [ev async for ev in plain.stream(req)]
    await plain.aclose()
    assert e.value.error_class is ErrorClass.INVALID_REQUEST


ANTHROPIC_OK = (
    an(
        "message_start",
        {
            "message": {
                "id": "msg_1",
                "usage": {
                    "input_tokens": 20,
                    "cache_read_input_tokens": 5,
                    "output_tokens": 1,
                },
            }
        },
    ),
    an("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    an("ping", {}),
    an("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Bon"}}),
    an("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "jour"}}),
    an("content_block_stop", {"index": 0}),
    an("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}),
    an("message_stop", {}),
)


async def test_anthropic_text_usage_finish_and_request_shape() -> None:
    handler = sse(*ANTHROPIC_OK, split=5)
    events = await collect(anthropic_provider(handler))
    assert events == [
        UsageUpdate(input_tokens=25, output_tokens=1),
        TextChunk("Bon"),
        TextChunk("jour"),
        UsageUpdate(input_tokens=25, output_tokens=7),
        Finish("stop"),
    ]
    (request,) = handler.seen  # type: ignore[attr-defined]
    assert request.url == "http://upstream.test/v1/messages"
    assert request.headers["x-api-key"] == "sk-unit-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    body = json.loads(request.content)
    assert body["system"] == "be brief"
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["stop_sequences"] == ["END"]
    assert body["stream"] is True


@pytest.mark.parametrize(
    ("raw", "norm"),
    [("max_tokens", "length"), ("refusal", "content_filter"), ("stop_sequence", "stop")],
)
async def test_anthropic_stop_reasons_normalized(raw: str, norm: str) -> None:
    handler = sse(
        an("message_delta", {"delta": {"stop_reason": raw}, "usage": {"output_tokens": 3}}),
        an("message_stop", {}),
    )
    assert (await collect(anthropic_provider(handler)))[-1] == Finish(norm)


async def test_anthropic_prefill_for_continuation() -> None:
    req = ProviderRequest(
        model="m1", messages=REQ.messages, max_tokens=8, assistant_prefix="Once upon "
    )
    handler = sse(an("message_stop", {}))
    p = anthropic_provider(handler)
    assert [ev async for ev in p.stream(req)] == [Finish("stop")]
    await p.aclose()
    body = json.loads(handler.seen[0].content)  # type: ignore[attr-defined]
    assert body["messages"][-1] == {"role": "assistant", "content": "Once upon"}


async def test_missing_key_sends_no_auth_header() -> None:
    handler = sse(*OPENAI_OK)
    p = OpenAIChatProvider(config("openai"), transport=httpx.MockTransport(handler), environ={})
    await collect(p)
    assert "authorization" not in handler.seen[0].headers  # type: ignore[attr-defined]
