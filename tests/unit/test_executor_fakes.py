"""Fakes for executor tests: a scripted in-memory provider, a test policy, plans, a ledger.

No tests live here; test_executor*.py import these helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dispatcher.events import TERMINAL, Event
from dispatcher.executor import Executor, GenerationParams
from dispatcher.ledger.rows import AttemptRow, RequestRow
from dispatcher.providers.base import Finish, ProviderRequest, StreamEvent, TextChunk, UsageUpdate
from modelroute.config import Config, parse_config
from modelroute.domain import (
    Budget,
    DecideInput,
    Decision,
    ErrorClass,
    ErrorPolicy,
    Hop,
    Message,
    ModelRef,
    Role,
    Signals,
    StreamingMode,
    TaskType,
)
from modelroute.errors import ProviderError

TASKS = [t.label for t in TaskType]

# name -> (provider, input $/Mtok, output $/Mtok, context window)
MODELS = {
    "alpha": ("p1", 1.0, 2.0, 8000),
    "alpha-mini": ("p1", 0.5, 1.0, 4000),
    "beta": ("p2", 2.0, 4.0, 32000),
    "gamma": ("p3", 10.0, 30.0, 128000),
}


def make_config(*, tenant_limit: float | None = None, hedge_after_ms: int = 0) -> Config:
    lines = ['[policy]\nversion = "test-1"\ndefault_tier = "std"\n']
    for p in ("p1", "p2", "p3"):
        lines.append(f'[providers.{p}]\nprotocol = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n')
    for name, (prov, pin, pout, ctx) in MODELS.items():
        lines.append(
            f'[[models]]\nname = "{name}"\nprovider = "{prov}"\ninput_usd_per_mtok = {pin}\n'
            f"output_usd_per_mtok = {pout}\ncontext_window = {ctx}\n[models.ability]\n"
            + "".join(f"{t} = 0.5\n" for t in TASKS)
        )
    lines.append("".join(f"[tasks.{t}]\nsensitivity = 0.5\n" for t in TASKS))
    lines.append(
        "[tiers.std]\nlatency_sla_ms = 1000\ntotal_deadline_ms = 30000\nmax_cost_usd = 1.0\n"
        f'cost_weight = 1.0\nstreaming_mode = "restart"\nhedge_after_ms = {hedge_after_ms}\n'
    )
    limit = f"spend_limit_usd = {tenant_limit}\nspend_window_s = 3600\n" if tenant_limit else ""
    lines.append(f'[tenants.t1]\ntier = "std"\n{limit}')
    return parse_config("\n".join(lines).encode(), source="<test>")


def make_plan(
    models: Sequence[str],
    *,
    mode: StreamingMode = StreamingMode.RESTART,
    ttft_ms: int = 0,
    total_ms: int = 30000,
    max_cost: float = 1.0,
    max_output_tokens: int = 256,
    continuation: bool = False,
    on_error: tuple[ErrorPolicy, ...] = (),
    typical_ttft_ms: int = 10,
) -> Decision:
    chain = tuple(
        Hop(
            index=i,
            model=ModelRef(MODELS[m][0], m),
            on_error=on_error,
            max_output_tokens=max_output_tokens,
            estimated_cost_usd=0.001,
            context_window=MODELS[m][3],
            typical_ttft_ms=typical_ttft_ms,
            supports_continuation=continuation,
        )
        for i, m in enumerate(models)
    )
    return Decision(
        decision_id="d-1",
        request_id="r-1",
        policy_version="test-1",
        policy_hash="abc",
        model=chain[0].model,
        budget=Budget(100000, max_output_tokens, max_cost, ttft_ms, total_ms),
        chain=chain,
        signals=Signals(TaskType.OPEN_QA, 0.9, 0.3, 12, "std", "t1", 1000, ()),
        reason="test",
        decision_time_us=900,
        streaming_mode=mode,
        tenant="t1",
        tier="std",
    )


def make_input(text: str = "What is the capital of France?") -> DecideInput:
    return DecideInput(messages=(Message(Role.USER, text),), request_id="r-1", tenant="t1")


# Script steps: ("text", str) | ("usage", in, out) | ("finish", reason) | ("sleep", s)
# | ("error", ErrorClass, retry_after_s | None) | ("hang",) | ("crash",)
Step = tuple[Any, ...]
E = TypeVar("E")
OK: list[Step] = [("text", "Par"), ("text", "is."), ("usage", 20, 2), ("finish", "stop")]


@dataclass
class FakeProvider:
    name: str
    # model -> scripts, one consumed per call; when exhausted, OK is played.
    scripts: dict[str, list[list[Step]]] = field(default_factory=dict)
    calls: list[ProviderRequest] = field(default_factory=list)
    cancelled: int = 0

    def script(self, model: str, *steps: list[Step]) -> FakeProvider:
        self.scripts.setdefault(model, []).extend(steps)
        return self

    async def stream(self, req: ProviderRequest) -> AsyncIterator[StreamEvent]:
        self.calls.append(req)
        queue = self.scripts.get(req.model)
        steps = queue.pop(0) if queue else OK
        try:
            for step in steps:
                ev = await self._play(step)
                if ev is not None:
                    yield ev
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def _play(self, step: Step) -> StreamEvent | None:
        kind = step[0]
        if kind == "text":
            await asyncio.sleep(0)
            return TextChunk(str(step[1]))
        if kind == "usage":
            return UsageUpdate(int(step[1]), int(step[2]))
        if kind == "finish":
            return Finish(str(step[1]))
        if kind == "sleep":
            await asyncio.sleep(float(step[1]))
            return None
        if kind == "hang":
            await asyncio.Event().wait()
        if kind == "error":
            ec = step[1]
            assert isinstance(ec, ErrorClass)
            ra = step[2] if len(step) > 2 else None
            raise ProviderError(ec, f"fake {ec.label}", retry_after_s=ra)
        if kind == "crash":
            raise RuntimeError("adapter bug")
        raise AssertionError(f"unknown step {kind}")

    async def aclose(self) -> None:
        return None


def providers() -> dict[str, FakeProvider]:
    return {p: FakeProvider(p) for p in ("p1", "p2", "p3")}


@dataclass
class FakeLedger:
    requests: list[RequestRow] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)

    def record(self, request: RequestRow, attempts: Sequence[AttemptRow]) -> None:
        self.requests.append(request)
        self.attempts.extend(attempts)

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class FakeTime:
    """A clock that only moves when the executor sleeps (backoff)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s
        await asyncio.sleep(0)


async def collect(
    ex: Executor,
    plan: Decision,
    inp: DecideInput | None = None,
    params: GenerationParams | None = None,
) -> list[Event]:
    """Run a request to its end; check the stream shape every test relies on."""
    run = await ex.start(inp or make_input(), plan, params)
    events = [ev async for ev in run.events()]
    terminals = [e for e in events if isinstance(e, TERMINAL)]
    assert len(terminals) == 1, events
    assert isinstance(events[-1], TERMINAL)
    return events


def of_type(events: Sequence[Event], cls: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, cls)]
