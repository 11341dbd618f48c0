"""The adapters against the provider simulator over real HTTP: answers, usage, continuation,
and every injected fault classified as the dispatcher needs it."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import cast

import pytest
from llmock.scenarios import Behavior, Fail, Reply, StreamFault
from llmock.state import LLMockState
from llmock.testing import LLMockServer

from dispatcher.providers.anthropic import AnthropicMessagesProvider
from dispatcher.providers.base import (
    Finish,
    Provider,
    ProviderRequest,
    PushProvider,
    StreamEvent,
    TextChunk,
    UsageUpdate,
)
from dispatcher.providers.openai import OpenAIChatProvider
from dispatcher.providers.registry import build_providers, close_providers
from dispatcher.providers.sse import _PROXY_ENV
from dispatcher.simulator import Simulator, start_simulator
from dispatcher.simulator.replay import ReplayStore
from modelroute.config import ProviderConfig, load_config
from modelroute.domain import ErrorClass, Message, Role
from modelroute.errors import ProviderError

MODELS = {"openai": "gpt-4-1106-preview", "anthropic": "claude-v2"}
# A recorded prompt with a long answer, so mid-stream faults have chunks to come after.
PROMPT = "Write a function to remove all elements from a given list present in another list."
KEY = "sk-sim-integration-7f3c"
STALL_MS = 300
# The peer runs in a thread of this process; under a loaded machine its first chunk can take far
# longer than the simulator's, so its stall timeout is wider (its stall fault still lasts 3 s).
PEER_STALL_MS = 1500


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain http:// providers without HTTP/2 get the lean client (a proxy would put them on
    httpx, which is not pushed)."""
    for name in _PROXY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def sim(store: ReplayStore) -> AsyncIterator[Simulator]:
    async with start_simulator(speed=1000, replay=store, api_key=KEY) as s:
        yield s


def provider_config(sim: Simulator, protocol: str, **kw: object) -> ProviderConfig:
    base = {
        "name": f"sim-{protocol}",
        "protocol": protocol,
        "base_url": sim.base_url if protocol == "openai" else sim.anthropic_base_url,
        "api_key_env": "SIM_KEY",
        "connect_timeout_ms": 1000,
        "stall_timeout_ms": STALL_MS,
        "http2": True,
        "supports_continuation": True,
    }
    base.update(kw)
    return ProviderConfig(**base)  # type: ignore[arg-type]


def make(sim: Simulator, protocol: str, key: str = KEY, **kw: object) -> Provider:
    cfg = provider_config(sim, protocol, **kw)
    cls = OpenAIChatProvider if protocol == "openai" else AnthropicMessagesProvider
    return cls(cfg, environ={"SIM_KEY": key})


def request(protocol: str, headers: dict[str, str] | None = None, **kw: object) -> ProviderRequest:
    return ProviderRequest(
        model=MODELS[protocol],
        messages=(Message(Role.USER, PROMPT),),
        max_tokens=400,
        extra_headers=headers or {},
        **kw,  # type: ignore[arg-type]
    )


async def run(provider: Provider, req: ProviderRequest) -> list[StreamEvent]:
    try:
        return [ev async for ev in provider.stream(req)]
    finally:
        await provider.aclose()


async def pushed(provider: Provider, req: ProviderRequest) -> list[StreamEvent]:
    """The events ``stream_into`` hands over (the lean HTTP/1.1 client's push path)."""
    assert getattr(provider, "pushes", False)
    got: list[StreamEvent] = []
    try:
        await cast("PushProvider", provider).stream_into(req, got.append)
    finally:
        await provider.aclose()
    return got


async def fails(
    provider: Provider, req: ProviderRequest, push: bool = False
) -> tuple[ProviderError, int]:
    """The error and how many text chunks arrived before it (pulled, or pushed)."""
    texts = 0

    def count(ev: StreamEvent) -> None:
        nonlocal texts
        texts += isinstance(ev, TextChunk)

    try:
        with pytest.raises(ProviderError) as info:
            if push:
                await cast("PushProvider", provider).stream_into(req, count)
            else:
                async for ev in provider.stream(req):
                    count(ev)
    finally:
        await provider.aclose()
    assert KEY not in str(info.value)
    assert PROMPT not in str(info.value)
    return info.value, texts


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_answer_usage_and_finish(sim: Simulator, protocol: str) -> None:
    events = await run(make(sim, protocol), request(protocol))
    text = "".join(e.text for e in events if isinstance(e, TextChunk))
    usages = [e for e in events if isinstance(e, UsageUpdate)]
    assert len(text) > 100
    assert events[-1] == Finish("stop")
    assert isinstance(events[-2], UsageUpdate)
    final = usages[-1]
    assert final.input_tokens is not None and final.input_tokens > 0
    assert final.output_tokens is not None and final.output_tokens > 10
    assert sum(isinstance(e, Finish) for e in events) == 1


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_a_pushed_answer_is_the_pulled_one(sim: Simulator, protocol: str) -> None:
    pulled = await run(make(sim, protocol), request(protocol))
    assert await pushed(make(sim, protocol, http2=False), request(protocol)) == pulled
    short = dataclasses.replace(request(protocol), max_tokens=5)
    assert (await pushed(make(sim, protocol, http2=False), short))[-1] == Finish("length")


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_max_tokens_gives_length(sim: Simulator, protocol: str) -> None:
    events = await run(make(sim, protocol), dataclasses.replace(request(protocol), max_tokens=5))
    assert events[-1] == Finish("length")
    usage = [e for e in events if isinstance(e, UsageUpdate)][-1]
    assert usage.output_tokens is not None and usage.output_tokens <= 5


async def test_anthropic_continuation_continues_the_answer(sim: Simulator) -> None:
    full = await run(make(sim, "anthropic"), request("anthropic"))
    whole = "".join(e.text for e in full if isinstance(e, TextChunk))
    prefix = whole[: len(whole) // 2]
    rest = await run(make(sim, "anthropic"), request("anthropic", assistant_prefix=prefix))
    tail = "".join(e.text for e in rest if isinstance(e, TextChunk))
    assert rest[-1] == Finish("stop")
    assert tail
    assert (prefix.rstrip() + tail).replace(" ", "") == whole.replace(" ", "")


FAULTS: list[tuple[str, str, ErrorClass]] = [
    (fault, protocol, cls)
    for protocol in ("openai", "anthropic")
    for fault, cls in [
        ("rate_limit", ErrorClass.RATE_LIMITED),
        ("overloaded", ErrorClass.OVERLOADED),
        ("anthropic_overloaded", ErrorClass.OVERLOADED),
        ("bad_gateway", ErrorClass.OVERLOADED),
        ("bad_request", ErrorClass.INVALID_REQUEST),
        ("unauthorized", ErrorClass.AUTH),
        ("forbidden", ErrorClass.AUTH),
        ("context_overflow", ErrorClass.CONTEXT_OVERFLOW),
        ("internal", ErrorClass.INTERNAL),
        ("timeout", ErrorClass.TIMEOUT),
        ("stall", ErrorClass.TIMEOUT),
        ("cut", ErrorClass.OVERLOADED),
        ("malformed", ErrorClass.INTERNAL),
        (
            "error_event",
            ErrorClass.INTERNAL if protocol == "openai" else ErrorClass.OVERLOADED,
        ),
    ]
]


@pytest.mark.parametrize("push", [False, True], ids=["httpx-pulled", "http1-pushed"])
@pytest.mark.parametrize(("fault", "protocol", "expected"), FAULTS)
async def test_fault_classified(
    sim: Simulator, fault: str, protocol: str, expected: ErrorClass, push: bool
) -> None:
    headers = {"x-sim-fault": fault, "x-sim-fault-after": "2", "x-sim-retry-after": "4"}
    provider = make(sim, protocol, http2=not push)
    err, texts = await fails(provider, request(protocol, headers), push)
    assert err.error_class is expected, err.message
    if fault in ("stall", "cut", "malformed", "error_event"):
        assert texts == 2  # the fault came after the first chunks, inside an HTTP 200
    if fault == "rate_limit":
        assert err.retry_after_s == 4.0
    if fault == "cut":
        assert "stream cut" in err.message
    if fault == "malformed":
        assert "malformed stream" in err.message


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_content_filter_finish(sim: Simulator, protocol: str) -> None:
    headers = {"x-sim-fault": "content_filter", "x-sim-fault-after": "2"}
    events = await run(make(sim, protocol), request(protocol, headers))
    assert events[-1] == Finish("content_filter")
    assert sum(isinstance(e, TextChunk) for e in events) == 2


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_wrong_key_is_auth_and_never_echoed(
    sim: Simulator, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-key-should-not-leak-1234"
    with caplog.at_level(logging.DEBUG):
        err, _ = await fails(make(sim, protocol, key=wrong), request(protocol))
        events = await run(make(sim, protocol), request(protocol))
    assert err.error_class is ErrorClass.AUTH
    assert wrong not in str(err)
    assert events[-1] == Finish("stop")
    assert caplog.records
    assert wrong not in caplog.text
    assert KEY not in caplog.text


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_connection_refused_is_overloaded(sim: Simulator, protocol: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    err, _ = await fails(make(sim, protocol, base_url=url), request(protocol))
    assert err.error_class is ErrorClass.OVERLOADED
    assert err.message.endswith("connection failed")


async def test_unknown_model_is_overloaded(sim: Simulator) -> None:
    req = dataclasses.replace(request("openai"), model="no-such-model")
    err, _ = await fails(make(sim, "openai"), req)
    assert err.error_class is ErrorClass.OVERLOADED
    assert err.status == 404


async def test_registry_builds_every_configured_provider(sim: Simulator) -> None:
    cfg = load_config()
    urls = {"openai": sim.base_url, "anthropic": sim.anthropic_base_url}
    providers_cfg = {
        n: dataclasses.replace(p, base_url=urls[p.protocol]) for n, p in cfg.providers.items()
    }
    cfg = dataclasses.replace(cfg, providers=providers_cfg)
    env = {p.api_key_env: KEY for p in providers_cfg.values() if p.api_key_env}
    providers = build_providers(cfg, environ=env)
    assert set(providers) == set(cfg.providers)
    try:
        for name, provider in providers.items():
            assert provider.name == name
            protocol = cfg.providers[name].protocol
            events = [ev async for ev in provider.stream(request(protocol))]
            assert events[-1] == Finish("stop")
    finally:
        await close_providers(providers)


# --- an independent peer server (PyPI llmock) speaking both protocols -------------------------


@pytest.fixture(scope="module")
def peer() -> Iterator[LLMockServer]:
    with LLMockServer() as server:
        yield server


@pytest.fixture
def peer_state(peer: LLMockServer) -> Iterator[LLMockState]:
    peer.state.reset()
    yield peer.state
    peer.state.reset()


def make_peer(peer: LLMockServer, protocol: str) -> Provider:
    base = peer.base_url("openai") if protocol == "openai" else f"{peer.url}/anthropic/v1"
    cfg = ProviderConfig(
        name=f"peer-{protocol}",
        protocol=protocol,
        base_url=base,
        api_key_env="PEER_KEY",
        connect_timeout_ms=1000,
        stall_timeout_ms=PEER_STALL_MS,
        http2=False,
        supports_continuation=False,
    )
    cls = OpenAIChatProvider if protocol == "openai" else AnthropicMessagesProvider
    return cls(cfg, environ={"PEER_KEY": KEY})


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_peer_answer(peer: LLMockServer, peer_state: LLMockState, protocol: str) -> None:
    answer = "An answer scripted on the peer server, streamed in several chunks."
    peer_state.scenarios.add(Reply(text=answer))
    events = await run(make_peer(peer, protocol), request(protocol))
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == answer
    usage = [e for e in events if isinstance(e, UsageUpdate)][-1]
    assert usage.input_tokens is not None and usage.input_tokens > 0
    assert usage.output_tokens is not None and usage.output_tokens > 0
    assert events[-1] == Finish("stop")


PEER_FAULTS: list[tuple[str, Behavior, ErrorClass]] = [
    ("429", Fail(429, retry_after=2), ErrorClass.RATE_LIMITED),
    ("529", Fail(529), ErrorClass.OVERLOADED),
    ("503", Fail(503), ErrorClass.OVERLOADED),
    ("500", Fail(500), ErrorClass.INTERNAL),
    ("400", Fail(400), ErrorClass.INVALID_REQUEST),
    ("401", Fail(401), ErrorClass.AUTH),
    ("truncate", StreamFault("truncate", after_chunks=2), ErrorClass.OVERLOADED),
    ("disconnect", StreamFault("disconnect", after_chunks=2), ErrorClass.OVERLOADED),
    ("malformed", StreamFault("malformed", after_chunks=2), ErrorClass.INTERNAL),
    ("stall", StreamFault("stall", after_chunks=2, stall_seconds=3), ErrorClass.TIMEOUT),
]


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("behavior", "expected"), [f[1:] for f in PEER_FAULTS], ids=[f[0] for f in PEER_FAULTS]
)
async def test_peer_fault(
    peer: LLMockServer,
    peer_state: LLMockState,
    protocol: str,
    behavior: Behavior,
    expected: ErrorClass,
) -> None:
    peer_state.scenarios.add(Reply(text="one two three four five six seven eight nine ten"))
    peer_state.scenarios.add(behavior)
    err, _ = await fails(make_peer(peer, protocol), request(protocol))
    assert err.error_class is expected, err.message
    if isinstance(behavior, Fail) and behavior.retry_after is not None:
        assert err.retry_after_s == behavior.retry_after
    if isinstance(behavior, StreamFault) and behavior.kind == "truncate":
        assert "stream cut" in err.message


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_connection_reused_after_each_stream(sim: Simulator, protocol: str) -> None:
    """The body's end is read after the terminal marker, so the pooled connection is reused even
    when the consumer stops at Finish and closes the stream (as the dispatcher does)."""
    provider = make(sim, protocol)
    try:
        for _ in range(5):
            stream = provider.stream(request(protocol))
            async for ev in stream:
                if isinstance(ev, Finish):
                    break
            await stream.aclose()  # type: ignore[attr-defined]
        pool = provider._client._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1
        assert "Request Count: 5" in repr(pool.connections[0])
    finally:
        await provider.aclose()
