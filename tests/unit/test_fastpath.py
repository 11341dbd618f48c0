"""The native Decide (engine.fastpath) equals the Python path, and leaves it the rest."""

from __future__ import annotations

import dataclasses
import random

import pytest

from dispatcher.simulator.replay import ReplayStore
from engine.factory import build_engine
from engine.fastpath import fast_path
from engine.service import Engine
from engine.wire_decode import decide_input
from engine.wire_encode import DecisionEncoder
from modelroute.config import load_config
from modelroute.errors import ModelrouteError
from modelroute.v1 import common_pb2, engine_pb2

USER, SYSTEM, ASSISTANT, TOOL = (
    common_pb2.ROLE_USER,
    common_pb2.ROLE_SYSTEM,
    common_pb2.ROLE_ASSISTANT,
    common_pb2.ROLE_TOOL,
)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return build_engine(load_config())


def _python(engine: Engine, raw: bytes) -> engine_pb2.Decision | None:
    """The Python path's Decision of ``raw``, or None when it rejects the request."""
    try:
        req = engine_pb2.DecideRequest.FromString(raw)
        out = DecisionEncoder().encode(engine.decide(decide_input(req)))
    except ModelrouteError:
        return None
    return engine_pb2.Decision.FromString(out)


def _comparable(d: engine_pb2.Decision, random_request_id: bool) -> engine_pb2.Decision:
    d.decision_id = ""
    d.decision_time_us = 0
    if random_request_id:
        d.request_id = ""
    return d


def _req(*turns: tuple[int, str], **kw: object) -> engine_pb2.DecideRequest:
    r = engine_pb2.DecideRequest(**kw)  # type: ignore[arg-type]
    for role, text in turns:
        r.messages.add(role=role, content=text)
    return r


def _variants(text: str, i: int) -> list[engine_pb2.DecideRequest]:
    hint = common_pb2.TASK_TYPE_MATH if i % 2 else common_pb2.TASK_TYPE_SUMMARIZATION
    named = _req((USER, text), tier="standard", request_id=f"n{i}")
    named.messages[0].name = "alice"
    named.metadata["trace"] = "abc"
    named.metadata["team"] = "search"
    return [
        _req((USER, text), tier="premium", tenant="demo", request_id=f"r{i}"),
        _req((USER, text), tier="free", max_output_tokens=40),
        _req((USER, text), tenant="acme", task_hint=hint, request_id=f"h{i}"),
        _req((USER, text), tier="premium", max_output_tokens=1_000_000),
        _req(
            (SYSTEM, "Be brief."),
            (USER, "A first question."),
            (ASSISTANT, "Ask away."),
            (TOOL, "{}"),
            (USER, text),
            (ASSISTANT, "Partial answer"),
            tier="premium",
        ),
        named,
    ]


def _prompts(store: ReplayStore, n: int = 250) -> list[str]:
    recorded = [p for p in store.prompts("gpt-4-1106-preview") if p.isascii()]
    assert len(recorded) > n
    edge = ["x" * 9000, "word " * 3000, "a\x00b", "2 + 2 = ?", "def f():\n    return 1\n" * 300]
    return recorded[:: len(recorded) // n][:n] + edge


def test_native_decisions_equal_the_python_path(engine: Engine, store: ReplayStore) -> None:
    """On real prompts from every benchmark in the data, with tiers, tenants, hints, output caps,
    multi-turn conversations, names and metadata: equal Decisions, apart from the ids and the
    decision time (and the request id the engine makes when the request has none)."""
    fp = fast_path(engine, DecisionEncoder())
    assert fp is not None
    answered = 0
    for i, text in enumerate(_prompts(store)):
        for req in _variants(text, i):
            raw = req.SerializeToString()
            out = fp.decide(raw)
            expected = _python(engine, raw)
            assert expected is not None
            if out is None:
                continue
            answered += 1
            got = engine_pb2.Decision.FromString(out)
            assert got.decision_id and got.decision_time_us >= 0
            random_id = not req.request_id
            assert _comparable(got, random_id) == _comparable(expected, random_id), (i, req.tier)
    assert answered == 6 * 255  # every one of these requests is a common one


def test_excluded_models_carry_the_python_reasons(engine: Engine) -> None:
    """Large prompts and output caps exclude models by context window, budget and SLA: the
    reasons, which quote numbers, are written the same way. When the SLA excludes every model the
    Python path keeps the fastest (a rare path it alone takes)."""
    fp = fast_path(engine, DecisionEncoder())
    assert fp is not None
    seen = set()
    answered = 0
    for text in ("lorem ipsum dolor sit amet " * n for n in (10, 2000, 6000, 20000)):
        for tier in ("free", "standard", "premium"):
            raw = _req((USER, text), tier=tier, max_output_tokens=100_000).SerializeToString()
            out = fp.decide(raw)
            expected = _python(engine, raw)
            if out is None:
                assert expected is None or expected.reason.endswith("ms; 1 hop"), expected
                continue
            assert expected is not None
            answered += 1
            got = _comparable(engine_pb2.Decision.FromString(out), True)
            assert got == _comparable(expected, True)
            seen |= {c.excluded_reason.split(" ")[0] for c in got.signals.candidates}
    assert answered >= 6 and {"prompt", "typical", "not"} <= seen


def _group_field() -> bytes:
    return _req((USER, "hi")).SerializeToString() + b"\x4b\x4c"  # field 9, start/end group


def _fallbacks() -> list[tuple[str, bytes]]:
    r = _req((USER, "What is 2 + 2?"))
    overrides = _req((USER, "hi"))
    overrides.overrides.max_cost_usd = 0.5
    meta = _req((USER, "hi"))
    for k in range(65):
        meta.metadata[f"k{k}"] = "v"
    cases = {
        "non-ascii prompt": _req((USER, "Résumez ce texte.")),
        "non-ascii tenant": _req((USER, "hi"), tenant="acmé"),
        "overrides": overrides,
        "no messages": engine_pb2.DecideRequest(),
        "unset role": _req((0, "hi")),
        "unknown role": _req((9, "hi")),
        "unknown task hint": _req((USER, "hi"), task_hint=42),
        "empty content": _req((USER, "")),
        "whitespace content": _req((USER, " \t\n\x1c\x1f")),
        "unknown tier": _req((USER, "hi"), tier="platinum"),
        "long request id": _req((USER, "hi"), request_id="x" * 257),
        "zero output tokens": _req((USER, "hi"), max_output_tokens=0),
        "too many output tokens": _req((USER, "hi"), max_output_tokens=1_000_001),
        "too much metadata": meta,
        "cascade and slow-path tier": _req((USER, "hi"), tier="batch"),
        "prompt over the limit": _req((USER, "lorem ipsum " * 100_000)),
    }
    raw = r.SerializeToString()
    out = [(name, req.SerializeToString()) for name, req in cases.items()]
    return [*out, ("group", _group_field()), ("truncated", raw[:-3]), ("garbage", b"\xff" * 9)]


@pytest.mark.parametrize(("name", "raw"), _fallbacks(), ids=[n for n, _ in _fallbacks()])
def test_anything_but_the_common_case_is_left_to_the_python_path(
    engine: Engine, name: str, raw: bytes
) -> None:
    fp = fast_path(engine, DecisionEncoder())
    assert fp is not None
    assert fp.decide(raw) is None, name


def test_enforced_tenants_are_checked(engine: Engine) -> None:
    cfg = dataclasses.replace(engine.cfg, enforce_tenants=True)
    fp = fast_path(build_engine(cfg), DecisionEncoder())
    assert fp is not None
    assert fp.decide(_req((USER, "hi")).SerializeToString()) is None
    assert fp.decide(_req((USER, "hi"), tenant="nobody").SerializeToString()) is None
    assert fp.decide(_req((USER, "hi"), tenant="acme").SerializeToString()) is not None


def test_mutated_bytes_never_crash_and_never_disagree(engine: Engine) -> None:
    """Random byte flips, cuts and insertions in valid requests: the native path answers None or
    what the Python path answers, and never raises."""
    fp = fast_path(engine, DecisionEncoder())
    assert fp is not None
    rng = random.Random(7)
    base = [r.SerializeToString() for r in _variants("Explain quicksort in two lines.", 1)]
    answered = 0
    for _ in range(3000):
        b = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(b))
            op = rng.random()
            if op < 0.5:
                b[at] = rng.randrange(256)
            elif op < 0.75:
                del b[at]
            else:
                b.insert(at, rng.randrange(256))
        out = fp.decide(bytes(b))
        if out is None:
            continue
        answered += 1
        expected = _python(engine, bytes(b))
        assert expected is not None, bytes(b)
        got = engine_pb2.Decision.FromString(out)
        random_id = not engine_pb2.DecideRequest.FromString(bytes(b)).request_id
        assert _comparable(got, random_id) == _comparable(expected, random_id)
    assert answered > 100


def test_only_the_default_signals_get_a_native_path() -> None:
    cfg = load_config()
    assert fast_path(build_engine(cfg, fuse=False), DecisionEncoder()) is None
    ort = build_engine(dataclasses.replace(cfg, linear_kernel="onnxruntime"))
    assert fast_path(ort, DecisionEncoder()) is None
