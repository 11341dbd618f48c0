"""The thin Python client against a real server: Decide, Execute, and the stream rules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from modelroute.client import Client, ExecutionFailed, answer_text, decide_request
from modelroute.v1 import dispatcher_pb2

PROMPT = "Write a function to remove all elements from a given list present in another list."


async def test_decide_returns_the_plan(client: Client) -> None:
    plan = await client.decide([("system", "Be brief."), ("user", PROMPT)], tier="premium")
    assert plan.tier == "premium" and plan.chain[0].model == plan.model


async def test_complete_joins_the_answer(client: Client) -> None:
    text = await client.complete(PROMPT, tier="standard", max_output_tokens=200)
    assert len(text) > 50


async def test_answer_text_keeps_only_what_follows_a_reset(client: Client) -> None:
    meta = {"x-sim-fault": "cut", "x-sim-fault-after": "2", "x-sim-fault-count": "1"}
    meta["x-sim-fault-key"] = "client-reset"
    req = dispatcher_pb2.ExecuteRequest(
        request=decide_request(PROMPT, tier="standard", max_output_tokens=200, metadata=meta)
    )
    events = [ev async for ev in client.execute(req)]
    kinds = [ev.WhichOneof("event") for ev in events]
    assert "reset" in kinds and kinds[-1] == "completed"
    cut = kinds.index("reset")
    before = "".join(ev.delta.text for ev in events[:cut] if ev.WhichOneof("event") == "delta")
    after = "".join(ev.delta.text for ev in events[cut:] if ev.WhichOneof("event") == "delta")
    assert before and after

    async def replay() -> AsyncIterator[dispatcher_pb2.ExecuteEvent]:
        for ev in events:
            yield ev

    assert await answer_text(replay()) == after


async def test_failed_stream_raises_with_the_error_class(client: Client) -> None:
    with pytest.raises(ExecutionFailed) as e:
        await client.complete(
            PROMPT, metadata={"x-sim-fault": "bad_request"}, tier="standard", max_output_tokens=200
        )
    assert e.value.error_class == "ERROR_CLASS_INVALID_REQUEST"
    assert e.value.partial == ""


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown role 'robot'"):
        decide_request([("robot", "hi")])
