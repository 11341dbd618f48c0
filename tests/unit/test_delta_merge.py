"""Executor: text chunks already queued together leave as one delta; nothing waits for more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from dispatcher.events import Completed, Delta, Event, Failed
from dispatcher.executor import Executor
from dispatcher.providers.base import Finish, ProviderRequest, StreamEvent, TextChunk, UsageUpdate
from modelroute.domain import ErrorClass
from tests.unit.test_executor_fakes import collect, make_config, make_plan, of_type, providers


class BurstProvider:
    """Yields each burst of chunks without suspending inside it (as when one HTTP read holds
    several SSE events), and lets the loop run between bursts."""

    def __init__(self, name: str, bursts: Sequence[Sequence[StreamEvent]]) -> None:
        self.name = name
        self.bursts = bursts

    async def stream(self, req: ProviderRequest) -> AsyncIterator[StreamEvent]:
        for burst in self.bursts:
            for ev in burst:
                yield ev
            for _ in range(5):
                await asyncio.sleep(0)

    async def aclose(self) -> None:
        return None


def _executor(*bursts: Sequence[StreamEvent]) -> Executor:
    provs: dict[str, object] = dict(providers())
    provs["p1"] = BurstProvider("p1", bursts)
    return Executor(make_config(), provs)  # type: ignore[arg-type]


def _deltas(events: Sequence[Event]) -> list[str]:
    return [d.text for d in of_type(events, Delta)]


async def test_chunks_queued_together_are_sent_as_one_delta_in_order() -> None:
    ex = _executor(
        [TextChunk("Par"), TextChunk("is "), TextChunk("is")],
        [TextChunk(" the"), TextChunk(" capital.")],
        [UsageUpdate(20, 5), Finish("stop")],
    )
    events = await collect(ex, make_plan(["alpha"]))
    assert _deltas(events) == ["Paris is", " the capital."]
    done = events[-1]
    assert isinstance(done, Completed) and done.usage.output_tokens == 5


async def test_merging_stops_at_the_chunk_that_crosses_the_budget() -> None:
    # alpha costs $2 per million output tokens: 400,000 characters (~100,000 tokens) pass a
    # $0.01 budget; the crossing chunk and what follows it must not reach the client.
    ex = _executor([TextChunk("a" * 8), TextChunk("b" * 400_000), TextChunk("c"), Finish("stop")])
    events = await collect(ex, make_plan(["alpha"], max_cost=0.01))
    assert _deltas(events) == ["a" * 8]
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.error_class == ErrorClass.BUDGET_EXCEEDED and failed.partial
