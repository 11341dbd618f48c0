"""Execute over real gRPC (port 0) with the in-process engine, real adapters and the simulator.

Faults are asked of the simulator through request metadata (``x-sim-*``), which the dispatcher
passes on only because these tests build it with ``allow_sim_headers=True``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio

from dispatcher.ledger.sqlite import SqliteLedger
from dispatcher.runtime import DispatcherRuntime, RemoteEngine, build_dispatcher, in_process
from dispatcher.simulator import Simulator, start_simulator
from dispatcher.simulator.replay import ReplayStore
from engine import servicer
from engine.factory import build_engine
from engine.service import Engine
from modelroute.config import DEFAULT_CONFIG_PATH, Config, load_config, parse_config
from modelroute.domain import DecideInput
from modelroute.errors import InvalidInput
from modelroute.server import ServerHandle, start_server
from modelroute.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc, engine_pb2

SECRET = "sk-test-7f3a9c1e5b2d4f60"
PROMPT = "Write a function to remove all elements from a given list present in another list."


@pytest.fixture(scope="module")
def engine() -> Engine:
    return build_engine(load_config())


@pytest.fixture(autouse=True)
def no_key_in_output(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[None]:
    monkeypatch.setenv("MODELROUTE_SIMULATOR_KEY", SECRET)
    caplog.set_level("DEBUG")
    yield
    out = capsys.readouterr()
    assert SECRET not in caplog.text
    assert SECRET not in out.out and SECRET not in out.err


@dataclass
class Stack:
    sim: Simulator
    runtime: DispatcherRuntime
    handle: ServerHandle
    stub: dispatcher_pb2_grpc.DispatcherAsyncStub
    admin: dispatcher_pb2_grpc.AdminAsyncStub
    ledger_path: Path


def sim_config(sim: Simulator) -> Config:
    raw = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8").replace(
        "http://127.0.0.1:8090", sim.root_url
    )
    return parse_config(raw.encode(), source="<test>")


@pytest.fixture
async def stack(store: ReplayStore, engine: Engine, tmp_path: Path) -> AsyncIterator[Stack]:
    async with start_simulator(speed=1000, replay=store) as sim:
        ledger_path = tmp_path / "ledger.db"
        ledger = await SqliteLedger.open(ledger_path)
        runtime = await build_dispatcher(
            sim_config(sim), decide=in_process(engine), ledger=ledger, allow_sim_headers=True
        )
        handle = await start_server([runtime.register], port=0)
        handle.on_close.append(runtime.aclose)
        async with aio.insecure_channel(f"127.0.0.1:{handle.port}") as ch:
            yield Stack(
                sim,
                runtime,
                handle,
                dispatcher_pb2_grpc.DispatcherStub(ch),
                dispatcher_pb2_grpc.AdminStub(ch),
                ledger_path,
            )
        await handle.stop(1.0)


def execute_request(
    *, tier: str = "standard", prompt: str = PROMPT, **meta: str
) -> dispatcher_pb2.ExecuteRequest:
    req = engine_pb2.DecideRequest(
        request_id=uuid.uuid4().hex,
        tenant="it",
        tier=tier,
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=prompt)],
    )
    for k, v in meta.items():
        req.metadata[k.replace("_", "-")] = v
    return dispatcher_pb2.ExecuteRequest(request=req)


def fault(name: str, count: int = 1, **extra: str) -> dict[str, str]:
    """Metadata asking the simulator for ``name`` on the first ``count`` attempts only."""
    return {
        "x_sim_fault": name,
        "x_sim_fault_count": str(count),
        "x_sim_fault_key": uuid.uuid4().hex,
        **extra,
    }


async def run(
    stack: Stack, req: dispatcher_pb2.ExecuteRequest
) -> list[dispatcher_pb2.ExecuteEvent]:
    events = [ev async for ev in stack.stub.Execute(req, timeout=30)]
    kinds = [ev.WhichOneof("event") for ev in events]
    assert kinds[0] == "decision"
    assert [ev.seq for ev in events] == list(range(1, len(events) + 1))
    assert sum(k in ("completed", "failed") for k in kinds) == 1
    assert kinds[-1] in ("completed", "failed")
    return events


def text(events: list[dispatcher_pb2.ExecuteEvent]) -> str:
    return "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")


def of(events: list[dispatcher_pb2.ExecuteEvent], kind: str) -> list[dispatcher_pb2.ExecuteEvent]:
    return [e for e in events if e.WhichOneof("event") == kind]


async def test_execute_streams_a_plan_to_completion_and_writes_the_ledger(stack: Stack) -> None:
    events = await run(stack, execute_request())
    done = events[-1].completed
    assert done.finish_reason == dispatcher_pb2.FINISH_REASON_STOP
    assert done.attempts == 1 and done.usage.output_tokens > 0 and done.usage.cost_usd > 0
    assert len(text(events)) > 20
    assert events[0].decision.chain[0].model.name == done.model.name
    await stack.runtime.ledger.flush()  # type: ignore[union-attr]
    with sqlite3.connect(stack.ledger_path) as db:
        rows = db.execute("SELECT outcome, attempts, final_model FROM requests").fetchall()
        attempts = db.execute("SELECT outcome FROM attempts").fetchall()
    assert rows == [("completed", 1, done.model.name)]
    assert attempts == [("ok",)]


async def test_invalid_request_stops_without_moving_model(stack: Stack) -> None:
    events = await run(stack, execute_request(**fault("bad_request", 5)))
    failed = events[-1].failed
    assert failed.error_class == common_pb2.ERROR_CLASS_INVALID_REQUEST
    assert failed.attempts == 1 and not failed.partial


async def test_overloaded_fails_over_at_once(stack: Stack) -> None:
    events = await run(stack, execute_request(**fault("overloaded")))
    (af,) = of(events, "attempt_failed")
    assert af.attempt_failed.error_class == common_pb2.ERROR_CLASS_OVERLOADED
    assert af.attempt_failed.next == common_pb2.ACTION_FAIL_OVER
    done = events[-1].completed
    assert done.attempts == 2 and done.escalated


async def test_rate_limited_retries_the_same_hop_after_retry_after(stack: Stack) -> None:
    events = await run(stack, execute_request(**fault("rate_limit", x_sim_retry_after="1")))
    (af,) = of(events, "attempt_failed")
    assert af.attempt_failed.error_class == common_pb2.ERROR_CLASS_RATE_LIMITED
    assert af.attempt_failed.next == common_pb2.ACTION_RETRY
    assert af.attempt_failed.retry_after_ms >= 1000
    started = [e.attempt_started.model.name for e in of(events, "attempt_started")]
    assert len(started) == 2 and started[0] == started[1]
    assert events[-1].WhichOneof("event") == "completed"


async def test_auth_failure_moves_to_another_provider(stack: Stack) -> None:
    events = await run(stack, execute_request(**fault("unauthorized")))
    (af,) = of(events, "attempt_failed")
    assert af.attempt_failed.error_class == common_pb2.ERROR_CLASS_AUTH
    started = [e.attempt_started.model for e in of(events, "attempt_started")]
    assert started[0].provider != started[1].provider
    assert events[-1].WhichOneof("event") == "completed"


async def test_cut_stream_restarts_on_next_hop_with_a_reset(stack: Stack) -> None:
    events = await run(stack, execute_request(**fault("cut", x_sim_fault_after="2")))
    (reset,) = of(events, "reset")
    assert reset.reset.discarded_chars > 0
    after = events[events.index(reset) :]
    assert len(text(after)) > 0
    assert events[-1].WhichOneof("event") == "completed"


async def test_buffer_tier_failover_is_atomic(stack: Stack) -> None:
    events = await run(stack, execute_request(tier="batch", **fault("cut", x_sim_fault_after="2")))
    assert of(events, "reset") == []
    assert len(of(events, "delta")) == 1
    assert events[-1].WhichOneof("event") == "completed"


async def test_bad_input_is_invalid_argument_naming_the_field(stack: Stack) -> None:
    req = execute_request(prompt="   ")
    with pytest.raises(aio.AioRpcError) as err:
        await run(stack, req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("request.messages[0].content")
    empty = dispatcher_pb2.ExecuteRequest(request=engine_pb2.DecideRequest(tenant="it"))
    with pytest.raises(aio.AioRpcError) as err:
        await run(stack, empty)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("request.messages")


async def test_caller_held_plan_is_executed_as_given(stack: Stack, engine: Engine) -> None:
    first = await run(stack, execute_request())
    plan = first[0].decision
    req = execute_request()
    req.plan.CopyFrom(plan)
    events = await run(stack, req)
    assert events[0].decision.decision_id == plan.decision_id
    assert events[-1].WhichOneof("event") == "completed"


async def test_breaker_snapshot_is_listed_after_failures(stack: Stack) -> None:
    await run(stack, execute_request(**fault("overloaded")))
    resp = await stack.admin.ListBreakers(dispatcher_pb2.ListBreakersRequest())
    states = {b.endpoint.name: b for b in resp.breakers}
    assert states, "endpoints that served requests are listed"
    assert all(b.state == dispatcher_pb2.BREAKER_STATE_KIND_CLOSED for b in states.values())
    assert any(b.fail_count == 1 for b in states.values())


async def test_stall_mid_stream_then_kill_switch_stops_it_within_a_second(stack: Stack) -> None:
    req = execute_request(**fault("stall", 5, x_sim_fault_after="1"))
    call = stack.stub.Execute(req, timeout=30)
    seen: list[dispatcher_pb2.ExecuteEvent] = []
    async for ev in call:
        seen.append(ev)
        if ev.WhichOneof("event") == "delta":
            break
    provider = seen[0].decision.chain[0].model.provider
    await stack.admin.SetKillSwitch(
        dispatcher_pb2.SetKillSwitchRequest(
            scope=dispatcher_pb2.KILL_SCOPE_PROVIDER, value=provider, engaged=True, reason="test"
        )
    )
    async with asyncio.timeout(1.0):
        rest = [ev async for ev in call]
    failed = rest[-1].failed
    assert failed.error_class == common_pb2.ERROR_CLASS_KILLED and failed.partial


async def test_client_hang_up_cancels_without_tripping_the_breaker(stack: Stack) -> None:
    call = stack.stub.Execute(execute_request(**fault("stall", 5, x_sim_fault_after="1")))
    first: dispatcher_pb2.ExecuteEvent | None = None
    async for ev in call:
        first = first or ev
        if ev.WhichOneof("event") == "delta":
            break
    call.cancel()
    assert first is not None
    model = first.decision.chain[0].model
    rows: list[tuple[str, str, int]] = []
    async with asyncio.timeout(10):  # the server learns of the hang-up asynchronously
        while not rows:
            await asyncio.sleep(0.05)
            await stack.runtime.ledger.flush()  # type: ignore[union-attr]
            with sqlite3.connect(stack.ledger_path) as db:
                rows = db.execute("SELECT outcome, error_class, partial FROM requests").fetchall()
                attempts = db.execute("SELECT outcome FROM attempts").fetchall()
    assert rows == [("failed", "cancelled", 1)]
    assert attempts == [("cancelled",)]
    breakers = await stack.admin.ListBreakers(dispatcher_pb2.ListBreakersRequest())
    (b,) = [b for b in breakers.breakers if b.endpoint.name == model.name]
    assert b.fail_count == 0 and b.state == dispatcher_pb2.BREAKER_STATE_KIND_CLOSED


async def test_ledger_has_one_row_per_request_and_per_attempt_under_mixed_faults(
    stack: Stack,
) -> None:
    mixes = [
        {},
        fault("overloaded"),
        fault("bad_request", 5),
        fault("internal"),
        fault("cut", x_sim_fault_after="2"),
        fault("timeout"),
    ]
    results = await asyncio.gather(*(run(stack, execute_request(**m)) for m in mixes))
    started = sum(len(of(evs, "attempt_started")) for evs in results)
    await stack.runtime.ledger.flush()  # type: ignore[union-attr]
    with sqlite3.connect(stack.ledger_path) as db:
        (n_req,) = db.execute("SELECT COUNT(*) FROM requests").fetchone()
        (n_att,) = db.execute("SELECT COUNT(*) FROM attempts").fetchone()
        per_request = dict(db.execute("SELECT request_id, attempts FROM requests").fetchall())
    assert n_req == len(mixes)
    assert n_att == started
    for evs in results:
        terminal = evs[-1]
        kind = terminal.WhichOneof("event")
        total = terminal.completed.attempts if kind == "completed" else terminal.failed.attempts
        assert per_request[evs[0].request_id] == total == len(of(evs, "attempt_started"))


async def test_dispatcher_asks_a_remote_engine_over_grpc(
    store: ReplayStore, engine: Engine
) -> None:
    engine_server = await start_server([lambda s: servicer.register(s, engine)], port=0)
    async with start_simulator(speed=1000, replay=store) as sim:
        remote = RemoteEngine(f"127.0.0.1:{engine_server.port}")
        runtime = await build_dispatcher(sim_config(sim), decide=remote, ledger=None)
        handle = await start_server([runtime.register], port=0)
        handle.on_close.append(runtime.aclose)
        try:
            async with aio.insecure_channel(f"127.0.0.1:{handle.port}") as ch:
                stub: dispatcher_pb2_grpc.DispatcherAsyncStub = dispatcher_pb2_grpc.DispatcherStub(
                    ch
                )
                events = [e async for e in stub.Execute(execute_request(), timeout=30)]
                assert events[0].decision.decision_time_us > 0
                assert events[-1].WhichOneof("event") == "completed"
                with pytest.raises(aio.AioRpcError) as err:
                    _ = [e async for e in stub.Execute(execute_request(tier="nope"), timeout=30)]
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert (err.value.details() or "").startswith("request.tier")
            with pytest.raises(InvalidInput) as bad:  # the engine's own verdict, mapped back
                await remote(DecideInput(messages=(), tenant="it"))
            assert bad.value.field == "messages"
        finally:
            await handle.stop(1.0)
            await engine_server.stop(1.0)
