"""The simulator's Anthropic Messages endpoint, driven by the official ``anthropic`` SDK."""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import httpx
import pytest

from dispatcher.simulator import Simulator, start_simulator
from dispatcher.simulator.replay import ReplayStore
from modelroute.config import load_config

MODEL = "claude-v2"


@pytest.fixture(scope="module")
def known(shared_data: Path) -> tuple[str, str]:
    """A recorded MBPP prompt and claude-v2's recorded answer, read straight from the CSV."""
    csv.field_size_limit(1 << 30)
    with (shared_data / "routerbench" / "mbpp_train.csv").open(newline="") as f:
        row = next(csv.DictReader(f))
    return ast.literal_eval(row["prompt"])[0], ast.literal_eval(row[f"{MODEL}|model_response"])[0]


@pytest.fixture
async def sim(store: ReplayStore) -> AsyncIterator[Simulator]:
    async with start_simulator(speed=1000, replay=store, api_key=None) as s:
        yield s


def first_text(m: anthropic.types.Message) -> str:
    block = m.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


def client(sim: Simulator, key: str = "unused") -> anthropic.AsyncAnthropic:
    # The SDK appends /v1/messages to its base URL.
    return anthropic.AsyncAnthropic(
        base_url=f"{sim.root_url}/anthropic", api_key=key, max_retries=0, timeout=10
    )


async def test_non_streaming_replays_the_recorded_answer(
    sim: Simulator, known: tuple[str, str]
) -> None:
    prompt, answer = known
    async with client(sim) as ac:
        m = await ac.messages.create(
            model=MODEL,
            max_tokens=2000,
            system="You are a helpful assistant.",
            messages=[{"role": "user", "content": prompt}],
        )
    assert m.content[0].type == "text"
    assert m.content[0].text == answer
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 10
    assert m.usage.output_tokens > 50


async def test_streaming_text_and_usage(sim: Simulator, known: tuple[str, str]) -> None:
    prompt, answer = known
    async with client(sim) as ac:
        async with ac.messages.stream(
            model=MODEL, max_tokens=2000, messages=[{"role": "user", "content": prompt}]
        ) as stream:
            pieces = [t async for t in stream.text_stream]
            final = await stream.get_final_message()
        whole = await ac.messages.create(
            model=MODEL, max_tokens=2000, messages=[{"role": "user", "content": prompt}]
        )
    assert "".join(pieces) == answer
    assert len(pieces) > 5
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens


async def test_wire_event_sequence(sim: Simulator) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Name a color."}]}],
    }
    async with httpx.AsyncClient() as h:
        r = await h.post(f"{sim.anthropic_base_url}/messages", json=body)
    assert r.status_code == 200
    events = []
    for block in r.text.strip().split("\n\n"):
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[6:])
        assert data["type"] == name_line[7:]
        events.append(data)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"}
    assert events[0]["message"]["usage"]["input_tokens"] > 0
    assert events[-2]["usage"]["output_tokens"] >= 1
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


async def test_prefill_continues_the_answer(sim: Simulator, known: tuple[str, str]) -> None:
    prompt, answer = known
    cut = answer.rfind(" ", 0, len(answer) // 2)
    prefix = answer[:cut]
    async with client(sim) as ac:
        async with ac.messages.stream(
            model=MODEL,
            max_tokens=2000,
            messages=[
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": prefix},
            ],
        ) as stream:
            rest = "".join([t async for t in stream.text_stream])
        with pytest.raises(anthropic.BadRequestError):
            await ac.messages.create(
                model=MODEL,
                max_tokens=100,
                messages=[
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": prefix + " "},
                ],
            )
    assert rest == answer[cut:]
    assert prefix + rest == answer


async def test_max_tokens_stop_reason(sim: Simulator, known: tuple[str, str]) -> None:
    prompt, answer = known
    async with client(sim) as ac:
        m = await ac.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": prompt}]
        )
        async with ac.messages.stream(
            model=MODEL,
            max_tokens=10,
            stop_sequences=["```"],
            messages=[{"role": "user", "content": prompt}],
        ) as stream:
            final = await stream.get_final_message()
    assert m.stop_reason == "max_tokens"
    assert 0 < m.usage.output_tokens <= 10
    assert answer.startswith(first_text(m))
    assert final.stop_reason in ("max_tokens", "stop_sequence")


async def test_stop_sequence(sim: Simulator, known: tuple[str, str]) -> None:
    prompt, answer = known
    assert "```" in answer
    async with client(sim) as ac:
        m = await ac.messages.create(
            model=MODEL,
            max_tokens=4000,
            stop_sequences=["```"],
            messages=[{"role": "user", "content": prompt}],
        )
    assert m.stop_reason == "stop_sequence"
    assert m.stop_sequence == "```"
    assert first_text(m) == answer[: answer.index("```")]


async def test_errors_in_anthropic_shape(sim: Simulator) -> None:
    window = load_config().models[MODEL].context_window
    async with client(sim) as ac:
        with pytest.raises(anthropic.NotFoundError) as missing:
            await ac.messages.create(
                model="claude-nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(anthropic.BadRequestError) as overflow:
            await ac.messages.create(
                model=MODEL,
                max_tokens=10,
                messages=[{"role": "user", "content": "word " * (window + 10)}],
            )
    assert isinstance(missing.value.body, dict)
    assert missing.value.body["error"]["type"] == "not_found_error"
    assert isinstance(overflow.value.body, dict)
    assert overflow.value.body["error"]["type"] == "invalid_request_error"
    assert overflow.value.body["error"]["message"].startswith("prompt is too long")
    async with httpx.AsyncClient() as h:
        no_max = await h.post(
            f"{sim.anthropic_base_url}/messages",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
    assert no_max.status_code == 400
    assert no_max.json()["type"] == "error"


async def test_key_required_when_configured(store: ReplayStore) -> None:
    async with (
        start_simulator(speed=1000, replay=store, api_key="sim-secret") as s,
        client(s, "wrong") as bad,
        client(s, "sim-secret") as good,
    ):
        with pytest.raises(anthropic.AuthenticationError) as exc:
            await bad.messages.create(
                model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
        ok = await good.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(exc.value.body, dict)
    assert exc.value.body["error"]["type"] == "authentication_error"
    assert "sim-secret" not in json.dumps(exc.value.body)
    assert ok.content[0].type == "text"
