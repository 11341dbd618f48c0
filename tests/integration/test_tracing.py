"""Spans for Decide and Execute, with attempts as events and no request text anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelroute.client import Client
from modelroute.telemetry import configure

PROMPT = "Write a function to remove all elements from a given list present in another list."


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The global provider can be set once per process; tests share this one.
    trace.set_tracer_provider(provider)
    yield exporter


async def test_decide_and_execute_leave_spans_without_prompt_text(
    spans: InMemorySpanExporter, client: Client
) -> None:
    spans.clear()
    await client.decide(PROMPT, tier="premium", request_id="trace-1")
    meta = {"x-sim-fault": "overloaded", "x-sim-fault-count": "1", "x-sim-fault-key": "trace-2"}
    await client.complete(PROMPT, tier="standard", max_output_tokens=100, metadata=meta)
    # The server ends the Execute span after its last event reached the client: wait for it.
    for _ in range(100):
        done = {s.name: s for s in spans.get_finished_spans()}
        if "modelroute.Execute" in done:
            break
        await asyncio.sleep(0.02)
    decide = done["modelroute.Decide"]
    assert decide.attributes is not None
    assert decide.attributes["modelroute.request_id"] == "trace-1"
    assert decide.attributes["modelroute.tier"] == "premium"
    execute = done["modelroute.Execute"]
    assert (
        execute.attributes is not None and execute.attributes["modelroute.outcome"] == "completed"
    )
    names = [e.name for e in execute.events]
    # The overloaded first attempt fails over: at least two attempts, one recorded failure.
    assert names.count("attempt") >= 2 and "attempt_failed" in names, names
    for span in done.values():
        for value in (span.attributes or {}).values():
            assert PROMPT[:30] not in str(value)


def test_unknown_exporter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown trace exporter 'zipkin'"):
        configure("zipkin")
