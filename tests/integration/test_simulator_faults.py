"""Every simulator fault, as a client of the real provider would see it (SDKs and raw HTTP)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from dispatcher.simulator import Simulator, start_simulator
from dispatcher.simulator.replay import ReplayStore

OPENAI_MODEL = "gpt-4-1106-preview"
ANTHROPIC_MODEL = "claude-v2"
# A recorded prompt with a long answer, so mid-stream faults have chunks to come after.
PROMPT = "Write a function to remove all elements from a given list present in another list."


@pytest.fixture
async def sim(store: ReplayStore) -> AsyncIterator[Simulator]:
    async with start_simulator(speed=1000, replay=store, api_key=None) as s:
        yield s


def request(sim: Simulator, protocol: str, stream: bool) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": PROMPT}], "stream": stream}
    if protocol == "openai":
        return f"{sim.base_url}/chat/completions", {**body, "model": OPENAI_MODEL}
    url = f"{sim.anthropic_base_url}/messages"
    return url, {**body, "model": ANTHROPIC_MODEL, "max_tokens": 2000}


async def read_sse(
    sim: Simulator, protocol: str, headers: dict[str, str], read_timeout: float = 0.5
) -> tuple[int, list[str], Exception | None]:
    """Status, the SSE data payloads received, and the error that ended the read (if any)."""
    url, body = request(sim, protocol, stream=True)
    data: list[str] = []
    status = 0  # stays 0 when no response head arrived
    timeout = httpx.Timeout(5.0, read=read_timeout)
    async with httpx.AsyncClient(timeout=timeout) as h:
        try:
            async with h.stream("POST", url, json=body, headers=headers) as r:
                status = r.status_code
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        data.append(line[6:])
                return status, data, None
        except (httpx.ReadTimeout, httpx.RemoteProtocolError) as e:
            return status, data, e


def text_deltas(protocol: str, data: list[str]) -> int:
    if protocol == "openai":
        return sum(1 for d in data if '"content":"' in d and '"role"' not in d)
    return sum(1 for d in data if '"text_delta"' in d)


STATUS_CASES = [
    ("rate_limit", 429, "rate_limit_exceeded", "rate_limit_error"),
    ("overloaded", 503, None, "overloaded_error"),
    ("anthropic_overloaded", 529, None, "overloaded_error"),
    ("bad_request", 400, None, "invalid_request_error"),
    ("unauthorized", 401, "invalid_api_key", "authentication_error"),
    ("forbidden", 403, "unsupported_country_region_territory", "permission_error"),
    ("context_overflow", 400, "context_length_exceeded", "invalid_request_error"),
    ("internal", 500, None, "api_error"),
]


@pytest.mark.parametrize(("fault", "status", "openai_code", "anthropic_type"), STATUS_CASES)
async def test_status_faults_in_each_providers_shape(
    sim: Simulator, fault: str, status: int, openai_code: str | None, anthropic_type: str
) -> None:
    headers = {"x-sim-fault": fault, "x-sim-retry-after": "7"}
    oc = openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0)
    ac = anthropic.AsyncAnthropic(base_url=f"{sim.root_url}/anthropic", api_key="k", max_retries=0)
    async with oc, ac:
        with pytest.raises(openai.APIStatusError) as oe:
            await oc.chat.completions.create(
                model=OPENAI_MODEL,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                extra_headers=headers,
            )
        with pytest.raises(anthropic.APIStatusError) as ae:
            await ac.messages.create(
                model=ANTHROPIC_MODEL,
                max_tokens=50,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers=headers,
            )
    assert oe.value.status_code == status
    assert oe.value.code == openai_code
    assert isinstance(oe.value.body, dict) and oe.value.body["message"]
    assert ae.value.status_code == status
    assert isinstance(ae.value.body, dict)
    assert ae.value.body["type"] == "error"
    assert ae.value.body["error"]["type"] == anthropic_type
    if fault == "rate_limit":
        assert oe.value.response.headers["retry-after"] == "7"
        assert ae.value.response.headers["retry-after"] == "7"
        assert isinstance(oe.value, openai.RateLimitError)
        assert isinstance(ae.value, anthropic.RateLimitError)
    if fault == "context_overflow":
        assert ae.value.body["error"]["message"].startswith("prompt is too long")
    assert sim.stats.faults[fault] == 2
    assert sim.stats.statuses[str(status)] == 2


async def test_rate_limit_retry_after_defaults_to_one_second(sim: Simulator) -> None:
    url, body = request(sim, "openai", stream=False)
    async with httpx.AsyncClient() as h:
        r = await h.post(url, json=body, headers={"x-sim-fault": "rate_limit"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "requests"


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_bad_gateway_is_an_html_502(sim: Simulator, protocol: str) -> None:
    url, body = request(sim, protocol, stream=True)
    async with httpx.AsyncClient() as h:
        r = await h.post(url, json=body, headers={"x-sim-fault": "bad_gateway"})
    assert r.status_code == 502
    assert r.headers["content-type"] == "text/html"
    assert "502 Bad Gateway" in r.text


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [True, False])
async def test_timeout_accepts_and_never_answers(
    sim: Simulator, protocol: str, stream: bool
) -> None:
    url, body = request(sim, protocol, stream)
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.3)) as h:
        with pytest.raises(httpx.ReadTimeout):
            await h.post(url, json=body, headers={"x-sim-fault": "timeout"})
    assert sim.stats.faults["timeout"] == 1


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_stall_sends_n_chunks_then_goes_silent(sim: Simulator, protocol: str) -> None:
    headers = {"x-sim-fault": "stall", "x-sim-fault-after": "2"}
    status, data, err = await read_sse(sim, protocol, headers)
    assert status == 200
    assert isinstance(err, httpx.ReadTimeout)
    assert text_deltas(protocol, data) == 2


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_cut_closes_the_socket_mid_stream(sim: Simulator, protocol: str) -> None:
    headers = {"x-sim-fault": "cut", "x-sim-fault-after": "3"}
    status, data, err = await read_sse(sim, protocol, headers, read_timeout=5.0)
    assert status == 200
    assert isinstance(err, httpx.RemoteProtocolError)
    assert text_deltas(protocol, data) == 3
    url, body = request(sim, protocol, stream=False)
    async with httpx.AsyncClient() as h:
        with pytest.raises(httpx.RemoteProtocolError):
            await h.post(url, json=body, headers={"x-sim-fault": "cut"})


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_malformed_sends_invalid_json_after_n_chunks(sim: Simulator, protocol: str) -> None:
    headers = {"x-sim-fault": "malformed", "x-sim-fault-after": "2"}
    status, data, err = await read_sse(sim, protocol, headers)
    assert status == 200 and err is None
    assert text_deltas(protocol, data) == 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[-1])
    assert "[DONE]" not in data


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_error_event_inside_a_200_stream(sim: Simulator, protocol: str) -> None:
    headers = {"x-sim-fault": "error_event", "x-sim-fault-after": "2"}
    status, data, err = await read_sse(sim, protocol, headers)
    assert status == 200 and err is None
    assert text_deltas(protocol, data) == 2
    last = json.loads(data[-1])
    if protocol == "openai":
        assert last["error"]["type"] == "server_error"
    else:
        assert last == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        }


async def test_error_event_raises_in_the_sdks(sim: Simulator) -> None:
    headers = {"x-sim-fault": "error_event", "x-sim-fault-after": "1"}
    oc = openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0)
    ac = anthropic.AsyncAnthropic(base_url=f"{sim.root_url}/anthropic", api_key="k", max_retries=0)
    async with oc, ac:
        stream = await oc.chat.completions.create(
            model=OPENAI_MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            extra_headers=headers,
        )
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
        with pytest.raises(anthropic.APIStatusError) as ae:
            async with ac.messages.stream(
                model=ANTHROPIC_MODEL,
                max_tokens=2000,
                messages=[{"role": "user", "content": PROMPT}],
                extra_headers=headers,
            ) as s:
                async for _ in s.text_stream:
                    pass
    assert isinstance(ae.value.body, dict)
    assert ae.value.body["error"]["type"] == "overloaded_error"


async def test_content_filter_ends_the_answer_early(sim: Simulator) -> None:
    headers = {"x-sim-fault": "content_filter", "x-sim-fault-after": "2"}
    oc = openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0)
    ac = anthropic.AsyncAnthropic(base_url=f"{sim.root_url}/anthropic", api_key="k", max_retries=0)
    async with oc, ac:
        stream = await oc.chat.completions.create(
            model=OPENAI_MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            extra_headers=headers,
        )
        finishes = [c.choices[0].finish_reason async for c in stream if c.choices]
        whole = await oc.chat.completions.create(
            model=OPENAI_MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers=headers,
        )
        message = await ac.messages.create(
            model=ANTHROPIC_MODEL,
            max_tokens=2000,
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers=headers,
        )
    assert finishes[-1] == "content_filter"
    assert len(finishes) == 4  # role chunk, 2 content chunks, finish chunk
    assert whole.choices[0].finish_reason == "content_filter"
    assert message.stop_reason == "refusal"


async def test_fault_count_fails_k_times_then_succeeds(sim: Simulator) -> None:
    headers = {"x-sim-fault": "overloaded", "x-sim-fault-count": "2", "x-sim-fault-key": "t1"}
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0) as oc:
        outcomes = []
        for _ in range(4):
            try:
                await oc.chat.completions.create(
                    model=OPENAI_MODEL,
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers=headers,
                )
                outcomes.append(200)
            except openai.APIStatusError as e:
                outcomes.append(e.status_code)
    assert outcomes == [503, 503, 200, 200]


async def test_configured_odds_apply_when_no_header(store: ReplayStore) -> None:
    async with start_simulator(
        speed=1000, replay=store, api_key=None, fault_odds={"overloaded": 1.0}, seed=3
    ) as s:
        url, body = request(s, "openai", stream=False)
        async with httpx.AsyncClient() as h:
            drawn = [(await h.post(url, json=body)).status_code for _ in range(3)]
            chosen = await h.post(url, json=body, headers={"x-sim-fault": "rate_limit"})
    assert drawn == [503, 503, 503]
    assert chosen.status_code == 429
    assert s.stats.faults["overloaded"] == 3


async def test_ttft_header_delays_the_first_token(sim: Simulator) -> None:
    status, data, err = await read_sse(sim, "openai", {"x-sim-ttft-ms": "5000"}, read_timeout=0.3)
    assert status == 200
    assert isinstance(err, httpx.ReadTimeout)
    assert text_deltas("openai", data) == 0


async def test_close_cancels_open_streams(store: ReplayStore) -> None:
    got_delta = asyncio.Event()
    lines: list[str] = []

    async def consume(s: Simulator) -> Exception | None:
        url, body = request(s, "anthropic", stream=True)
        headers = {"x-sim-fault": "stall", "x-sim-fault-after": "1"}
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as h:
            try:
                async with h.stream("POST", url, json=body, headers=headers) as r:
                    async for line in r.aiter_lines():
                        lines.append(line)
                        if "text_delta" in line:
                            got_delta.set()
            except httpx.RemoteProtocolError as e:
                return e
        return None

    async with start_simulator(speed=1000, replay=store, api_key=None) as s:
        reader = asyncio.create_task(consume(s))
        await asyncio.wait_for(got_delta.wait(), 10)
        assert s.stats.open_streams == 1
    err = await asyncio.wait_for(reader, 10)
    assert isinstance(err, httpx.RemoteProtocolError)
    assert sum("text_delta" in ln for ln in lines) == 1
    assert s.stats.open_streams == 0


async def test_tokens_per_s_header_paces_the_chunks(sim: Simulator) -> None:
    # 4-token chunks at 1 token/s: the second chunk is due ~4 s after the first.
    headers = {"x-sim-ttft-ms": "0", "x-sim-tokens-per-s": "1"}
    status, data, err = await read_sse(sim, "anthropic", headers, read_timeout=0.5)
    assert status == 200
    assert isinstance(err, httpx.ReadTimeout)
    assert text_deltas("anthropic", data) == 1


async def test_speed_scales_the_configured_latency(store: ReplayStore) -> None:
    # At 1/100 speed gpt-4-1106-preview's 600 ms first token takes a minute.
    async with start_simulator(speed=0.01, replay=store, api_key=None) as slow:
        status, data, err = await read_sse(slow, "openai", {}, read_timeout=0.5)
    assert status == 200
    assert isinstance(err, httpx.ReadTimeout)
    assert text_deltas("openai", data) == 0
