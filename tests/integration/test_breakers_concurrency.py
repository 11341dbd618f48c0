"""Breakers around real streams to the provider simulator, many asyncio tasks at once: opens on
overload and mid-stream cuts, never on 400s or hung-up clients, skips while open, lets exactly
one probe reach the server after the cool-down, closes when it succeeds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dispatcher.breakers import BreakerBoard, BreakerSnapshot
from dispatcher.providers.base import Finish, ProviderRequest, TextChunk
from dispatcher.providers.openai import OpenAIChatProvider
from dispatcher.simulator import Simulator, start_simulator
from dispatcher.simulator.replay import ReplayStore
from modelroute.config import ProviderConfig
from modelroute.domain import Message, ModelRef, Role
from modelroute.errors import BreakerOpen, ProviderError

MODEL = "gpt-4-1106-preview"
EP = ModelRef("sim", MODEL)
PROMPT = "Write a function to remove all elements from a given list present in another list."
COOL_S = 0.3


@pytest.fixture
async def sim(store: ReplayStore) -> AsyncIterator[Simulator]:
    async with start_simulator(speed=1000, replay=store, api_key=None) as s:
        yield s


@pytest.fixture
async def provider(sim: Simulator) -> AsyncIterator[OpenAIChatProvider]:
    cfg = ProviderConfig(
        name="sim",
        protocol="openai",
        base_url=sim.base_url,
        api_key_env=None,
        connect_timeout_ms=1000,
        stall_timeout_ms=500,
        http2=False,
        supports_continuation=False,
    )
    p = OpenAIChatProvider(cfg)
    yield p
    await p.aclose()


def req(headers: dict[str, str] | None = None) -> ProviderRequest:
    return ProviderRequest(
        model=MODEL,
        messages=(Message(Role.USER, PROMPT),),
        max_tokens=300,
        extra_headers=headers or {},
    )


async def attempt(board: BreakerBoard, provider: OpenAIChatProvider, r: ProviderRequest) -> str:
    """One guarded attempt consuming the whole stream; returns its outcome label."""
    try:
        with board.guard(EP):
            async for ev in provider.stream(r):
                if isinstance(ev, Finish):
                    return "ok"
    except BreakerOpen:
        return "skipped"
    except ProviderError as e:
        return e.error_class.label
    return "no finish"


def snap(board: BreakerBoard) -> BreakerSnapshot:
    (s,) = board.snapshot()
    return s


async def test_concurrent_overload_opens_then_skips(
    sim: Simulator, provider: OpenAIChatProvider
) -> None:
    changes: list[BreakerSnapshot] = []
    board = BreakerBoard(fail_max=5, reset_timeout_s=30.0, on_change=changes.append)
    r = req({"x-sim-fault": "overloaded"})
    first = await asyncio.gather(*(attempt(board, provider, r) for _ in range(40)))
    # All 40 were admitted while closed; five failures opened it, the rest were stale.
    assert first == ["overloaded"] * 40
    assert snap(board).state == "open"
    assert snap(board).fail_count == 5
    assert [c.state for c in changes] == ["open"]
    before = sim.stats.requests
    later = await asyncio.gather(*(attempt(board, provider, req()) for _ in range(40)))
    assert later == ["skipped"] * 40
    assert sim.stats.requests == before  # nothing reached the provider
    assert not board.is_available(EP)


async def test_mid_stream_cut_counts(sim: Simulator, provider: OpenAIChatProvider) -> None:
    board = BreakerBoard(fail_max=3, reset_timeout_s=30.0)
    r = req({"x-sim-fault": "cut", "x-sim-fault-after": "3"})
    for _ in range(3):
        assert await attempt(board, provider, r) == "overloaded"
    assert snap(board).state == "open"


async def test_client_errors_and_hangups_never_open(
    sim: Simulator, provider: OpenAIChatProvider
) -> None:
    board = BreakerBoard(fail_max=3, reset_timeout_s=30.0)
    assert await attempt(board, provider, req({"x-sim-fault": "internal"})) == "internal"
    assert await attempt(board, provider, req({"x-sim-fault": "internal"})) == "internal"

    faults = ["bad_request", "context_overflow", "unauthorized", "rate_limit"] * 10
    results = await asyncio.gather(
        *(attempt(board, provider, req({"x-sim-fault": f})) for f in faults)
    )
    assert set(results) == {"invalid_request", "context_overflow", "auth", "rate_limited"}

    # Clients hanging up mid-stream (tasks cancelled while the stream is open).
    streaming = asyncio.Event()

    async def hang_up() -> None:
        with board.guard(EP):
            async for ev in provider.stream(
                req({"x-sim-fault": "stall", "x-sim-fault-after": "2"})
            ):
                if isinstance(ev, TextChunk):
                    streaming.set()

    tasks = [asyncio.create_task(hang_up()) for _ in range(20)]
    await streaming.wait()
    await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(d, asyncio.CancelledError) for d in done)

    assert snap(board).state == "closed"
    assert snap(board).fail_count == 2  # the two 500s, neither reset nor added to


async def test_half_open_lets_one_probe_through_then_closes(
    sim: Simulator, provider: OpenAIChatProvider
) -> None:
    changes: list[BreakerSnapshot] = []
    board = BreakerBoard(fail_max=2, reset_timeout_s=COOL_S, on_change=changes.append)
    # The endpoint fails twice, then recovers (the simulator counts requests per key).
    flaky = req({"x-sim-fault": "bad_gateway", "x-sim-fault-count": "2", "x-sim-fault-key": "k"})
    assert await attempt(board, provider, flaky) == "overloaded"
    assert await attempt(board, provider, flaky) == "overloaded"
    assert snap(board).state == "open"
    assert await attempt(board, provider, flaky) == "skipped"

    await asyncio.sleep(COOL_S + 0.1)
    assert board.is_available(EP)
    before = sim.stats.requests
    # A slow-ish answer so the probe is still streaming while the others arrive.
    slow = req({**flaky.extra_headers, "x-sim-ttft-ms": "150"})
    results = await asyncio.gather(*(attempt(board, provider, slow) for _ in range(30)))
    assert results.count("ok") == 1
    assert results.count("skipped") == 29
    assert sim.stats.requests - before == 1
    assert snap(board).state == "closed"
    assert [c.state for c in changes] == ["open", "half_open", "closed"]

    after = await asyncio.gather(*(attempt(board, provider, req()) for _ in range(10)))
    assert after == ["ok"] * 10


async def test_failed_probe_reopens(sim: Simulator, provider: OpenAIChatProvider) -> None:
    board = BreakerBoard(fail_max=1, reset_timeout_s=COOL_S)
    assert await attempt(board, provider, req({"x-sim-fault": "timeout"})) == "timeout"
    assert snap(board).state == "open"
    await asyncio.sleep(COOL_S + 0.1)
    results = await asyncio.gather(
        *(attempt(board, provider, req({"x-sim-fault": "overloaded"})) for _ in range(10))
    )
    assert sorted(results) == ["overloaded"] + ["skipped"] * 9
    assert snap(board).state == "open"
    assert not board.is_available(EP)
