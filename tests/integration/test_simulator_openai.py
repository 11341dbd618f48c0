"""The simulator's OpenAI-compatible endpoint, driven by the official ``openai`` SDK over HTTP."""

from __future__ import annotations

import ast
import asyncio
import csv
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from dispatcher.simulator import Simulator, start_simulator
from dispatcher.simulator.replay import ReplayStore
from modelroute.config import load_config

MODEL = "gpt-4-1106-preview"


@pytest.fixture(scope="module")
def known(shared_data: Path) -> tuple[str, dict[str, str]]:
    """A recorded MBPP prompt and each model's recorded answer, read straight from the CSV."""
    csv.field_size_limit(1 << 30)
    with (shared_data / "routerbench" / "mbpp_train.csv").open(newline="") as f:
        row = next(csv.DictReader(f))
    answers = {
        k.split("|")[0]: ast.literal_eval(v)[0]
        for k, v in row.items()
        if k.endswith("|model_response")
    }
    return ast.literal_eval(row["prompt"])[0], answers


@pytest.fixture
async def sim(store: ReplayStore) -> AsyncIterator[Simulator]:
    async with start_simulator(speed=1000, replay=store, api_key=None) as s:
        yield s


def client(sim: Simulator, key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.base_url, api_key=key, max_retries=0, timeout=10)


async def test_non_streaming_replays_the_recorded_answer_with_usage(
    sim: Simulator, known: tuple[str, dict[str, str]]
) -> None:
    prompt, answers = known
    async with client(sim) as oc:
        r = await oc.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}]
        )
    assert r.choices[0].message.content == answers[MODEL]
    assert r.choices[0].finish_reason == "stop"
    assert r.model == MODEL
    assert r.usage is not None
    assert r.usage.prompt_tokens > 10
    assert r.usage.completion_tokens > 50
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


async def test_streaming_with_usage_matches_non_streaming(
    sim: Simulator, known: tuple[str, dict[str, str]]
) -> None:
    prompt, answers = known
    model = "mistralai/mixtral-8x7b-chat"
    async with client(sim) as oc:
        stream = await oc.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finishes, usages, deltas = "", [], [], 0
        async for chunk in stream:
            if chunk.usage is not None:
                usages.append(chunk.usage)
                assert chunk.choices == []
            for choice in chunk.choices:
                text += choice.delta.content or ""
                deltas += 1
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
        whole = await oc.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
    assert text == answers[model]
    assert deltas > 5, "an answer arrives in several chunks"
    assert finishes == ["stop"]
    assert len(usages) == 1
    assert whole.usage is not None
    assert usages[0].completion_tokens == whole.usage.completion_tokens
    assert usages[0].prompt_tokens == whole.usage.prompt_tokens


async def test_wire_format_usage_null_then_usage_chunk_then_done(sim: Simulator) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Name a prime number."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx.AsyncClient() as h:
        r = await h.post(f"{sim.base_url}/chat/completions", json=body)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    lines = [ln for ln in r.text.split("\n") if ln]
    assert all(ln.startswith("data: ") for ln in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


async def test_without_include_usage_no_usage_key(sim: Simulator) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with httpx.AsyncClient() as h:
        r = await h.post(f"{sim.base_url}/chat/completions", json=body)
    chunks = [json.loads(ln[6:]) for ln in r.text.split("\n") if ln and ln != "data: [DONE]"]
    assert chunks and all("usage" not in c for c in chunks)


async def test_max_tokens_truncates_with_length(
    sim: Simulator, known: tuple[str, dict[str, str]]
) -> None:
    prompt, answers = known
    async with client(sim) as oc:
        r = await oc.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=12
        )
        s = await oc.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            max_completion_tokens=12,
            stream=True,
        )
        streamed, finish = "", None
        async for chunk in s:
            streamed += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    text = r.choices[0].message.content or ""
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 12
    assert answers[MODEL].startswith(text) and len(text) < len(answers[MODEL])
    assert streamed == text
    assert finish == "length"


async def test_unknown_model_is_404_model_not_found(sim: Simulator) -> None:
    async with client(sim) as oc:
        with pytest.raises(openai.NotFoundError) as exc:
            await oc.chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "hi"}]
            )
    assert exc.value.status_code == 404
    assert exc.value.code == "model_not_found"


async def test_prompt_beyond_context_window_is_context_length_exceeded(sim: Simulator) -> None:
    window = load_config().models["meta/llama-2-70b-chat"].context_window
    long_prompt = "word " * (window + 100)
    async with client(sim) as oc:
        with pytest.raises(openai.BadRequestError) as exc:
            await oc.chat.completions.create(
                model="meta/llama-2-70b-chat", messages=[{"role": "user", "content": long_prompt}]
            )
        fits = await oc.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long_prompt}]
        )
    assert exc.value.code == "context_length_exceeded"
    assert exc.value.type == "invalid_request_error"
    assert f"maximum context length is {window} tokens" in exc.value.message
    assert fits.choices[0].message.content


async def test_key_required_when_configured(store: ReplayStore) -> None:
    async with start_simulator(speed=1000, replay=store, api_key="sim-secret") as s:
        async with client(s, "wrong") as bad, client(s, "sim-secret") as good:
            with pytest.raises(openai.AuthenticationError) as exc:
                await bad.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "hi"}]
                )
            ok = await good.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}]
            )
            models = await good.models.list()
        assert "sim-secret" not in str(exc.value.body)
        assert exc.value.code == "invalid_api_key"
        assert ok.choices[0].message.content
        assert MODEL in {m.id for m in models.data}


async def test_models_health_and_stats(sim: Simulator) -> None:
    async with client(sim) as oc:
        listed = {m.id for m in (await oc.models.list()).data}
        await oc.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert set(load_config().models) <= listed
    async with httpx.AsyncClient() as h:
        health = await h.get(f"{sim.root_url}/healthz")
        stats = (await h.get(f"{sim.root_url}/stats")).json()
        in_process = sim.stats.snapshot()
        missing = await h.get(f"{sim.root_url}/v2/nothing")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert stats["models"][MODEL] == 1
    assert stats["statuses"]["200"] == 1
    assert stats == in_process
    assert missing.status_code == 404


async def test_keep_alive_serves_many_requests_on_one_connection(sim: Simulator) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1)) as h:
        for _ in range(5):
            r = await h.post(
                f"{sim.base_url}/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200
    assert sim.stats.requests == 5


async def test_missing_data_is_a_500_not_a_hang(tmp_path: Path) -> None:
    async with (
        start_simulator(speed=1000, data_dir=tmp_path, api_key=None) as s,
        client(s) as oc,
    ):
        with pytest.raises(openai.InternalServerError) as exc:
            await oc.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}]
            )
    assert exc.value.status_code == 500


async def test_expect_100_continue_is_answered(sim: Simulator) -> None:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: sim\r\ncontent-type: application/json\r\n"
        f"expect: 100-continue\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.write(body)
    await writer.drain()
    final = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    assert interim.startswith(b"HTTP/1.1 100 ")
    assert final.startswith(b"HTTP/1.1 200 ")
    assert b'"chat.completion"' in final
