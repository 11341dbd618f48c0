"""The flat signal reader equals the signal objects it stands for, on real prompts."""

from __future__ import annotations

import dataclasses

import pytest

from dispatcher.simulator.replay import ReplayStore
from engine.factory import build_engine
from engine.service import Engine, describe
from engine.signals.fused import FusedSignals
from engine.signals.tokens import TokenCounter
from modelroute.config import load_config
from modelroute.domain import DecideInput, Message, Overrides, Role, TaskType
from modelroute.errors import ModelrouteError
from tests.unit.fakes import FakeRouter, FakeTaskSignal, FixedTask

EXTRA = [
    "Résumez ce texte en une phrase : le chat dort sur le canapé.",
    "日本語の文章を要約してください。" * 40,
    "x" * 9000,
    "Write a Python function that merges two sorted lists.",
]


@pytest.fixture(scope="module")
def engines() -> tuple[Engine, Engine]:
    cfg = load_config()
    return build_engine(cfg), build_engine(cfg, fuse=False)


def _prompts(store: ReplayStore, n: int = 300) -> list[str]:
    """``n`` recorded prompts spread over every benchmark in the data, and a few edge cases."""
    recorded = list(store.prompts("gpt-4-1106-preview"))
    assert len(recorded) > n
    return recorded[:: len(recorded) // n][:n] + EXTRA


def _inputs(prompts: list[str]) -> list[DecideInput]:
    variants: list[dict[str, object]] = [
        {"tier": "premium"},
        {"tier": "free"},
        {"tier": "batch", "max_output_tokens": 40},
        {"tier": "premium", "task_hint": TaskType.MATH},
        {"tier": "standard", "overrides": Overrides(allowed_models=("gpt-3.5-turbo-1106",))},
    ]
    out = []
    for i, text in enumerate(prompts):
        v = variants[i % len(variants)]
        turns: tuple[Message, ...] = (Message(Role.USER, text),)
        if i % 3 == 0:  # multi-turn: the router judges the last user turn, tokens count all
            turns = (
                Message(Role.SYSTEM, "Be brief."),
                Message(Role.USER, "Hello there, a first question."),
                Message(Role.ASSISTANT, "Hello! Ask away."),
                *turns,
            )
        out.append(DecideInput(messages=turns, request_id=f"r{i}", **v))  # type: ignore[arg-type]
    return out


def test_default_engine_reads_flat_and_opt_out_does_not(engines: tuple[Engine, Engine]) -> None:
    fused, walked = engines
    assert fused.fused and not walked.fused


def test_flat_signals_equal_the_objects_on_real_prompts(
    engines: tuple[Engine, Engine], store: ReplayStore
) -> None:
    walked = engines[1]
    reader = FusedSignals.of(walked._tokens, walked._task, walked._router)
    assert reader is not None
    inputs = _inputs(_prompts(store))
    tasks = set()
    for inp in inputs:
        flat = reader.read(inp)
        ref = walked._signals(inp, walked._router.score)
        assert flat == ref
        assert type(flat.task) is TaskType and flat.quality == dict(ref.quality)
        tasks.add(flat.task)
    assert len(tasks) >= 4  # the prompts reach several task heads (math, code, general...)


def test_flat_and_walked_engines_decide_the_same(
    engines: tuple[Engine, Engine], store: ReplayStore
) -> None:
    fused, walked = engines
    decided = 0
    for inp in _inputs(_prompts(store, 120)):
        try:
            a = describe(fused.decide(inp))
        except ModelrouteError as e:
            with pytest.raises(type(e), match=r"."):
                walked.decide(inp)
            continue
        b = describe(walked.decide(inp))
        for d in (a, b):
            d.pop("decision_id")  # type: ignore[attr-defined]
            d.pop("decision_time_us")  # type: ignore[attr-defined]
        assert a == b
        decided += 1
    assert decided > 100


def test_other_signals_are_read_through_their_objects() -> None:
    cfg = load_config()
    fakes = Engine(
        cfg,
        tokens=TokenCounter(),
        task=FakeTaskSignal(FixedTask(TaskType.CODE)),
        router=FakeRouter(0.6, {"gpt-4-1106-preview": 0.9}),
    )
    assert not fakes.fused
    assert not build_engine(dataclasses.replace(cfg, linear_kernel="onnxruntime")).fused
