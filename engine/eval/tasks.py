"""Task type of evaluation prompts: the engine's task classifier when present, else the
benchmark's known family (GSM8K = math, MMLU = reasoning, ...)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from typing import Any

from engine.router.prior import head_for
from modelroute.domain import Message, Role, TaskType

BENCH_TASK: dict[str, TaskType] = {
    "gsm8k": TaskType.MATH,
    "mmlu": TaskType.REASONING,
    "arc_challenge": TaskType.REASONING,
    "winograde": TaskType.REASONING,
    "mbpp": TaskType.CODE,
}

__all__ = ["BENCH_TASK", "classify", "head_for", "sensitivity", "tasks_of"]


def classify(prompt: str) -> TaskType | None:
    """The task classifier's answer, or None when that signal is not installed."""
    try:
        mod = importlib.import_module("engine.signals.task")
    except ImportError:
        return None
    from engine.signals.base import RequestView

    clf = _CLF.get("clf")
    if clf is None:
        clf = mod.TaskClassifier()
        _CLF["clf"] = clf
    res = clf.read(RequestView((Message(Role.USER, prompt),)))
    return TaskType(res.task)


_CLF: dict[str, Any] = {}


def tasks_of(prompts: Sequence[str], bench: str) -> list[TaskType]:
    fallback = BENCH_TASK.get(bench, TaskType.OPEN_QA)
    out = []
    for p in prompts:
        t = classify(p)
        out.append(fallback if t is None else t)
    return out


@functools.cache
def sensitivity(task: TaskType) -> float:
    from modelroute.config import load_config

    pol = load_config().tasks.get(task)
    return pol.sensitivity if pol else 0.5
