"""``modelroute score --models A,B``: JSON lines in (``{"id", "prompt"}``), JSON lines out
(``{"id", "scores": {model: p}, "task", "difficulty"}``), in input order, offline.

A model the learned router has data for is scored by its success head; a model that is only in
the policy file is placed from its ``ability[task]`` prior and the prompt's difficulty.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TextIO

from engine.router.learned import LearnedRouter
from engine.signals.base import RequestView
from modelroute.config import Config, load_config
from modelroute.domain import Message, Role, TaskType
from modelroute.errors import InvalidInput

TaskFn = Callable[[RequestView], TaskType]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", required=True, help="comma-separated model names to score")
    parser.add_argument("--config", type=Path, default=None, help="policy file (default: embedded)")
    parser.add_argument(
        "--models-dir", type=Path, default=None, help="router model folder (default: engine/models)"
    )


def task_reader() -> TaskFn:
    """The engine's task classifier when installed; otherwise every prompt is open QA."""
    try:
        from engine.signals.task import TaskClassifier
    except ImportError:
        return lambda _req: TaskType.OPEN_QA
    clf = TaskClassifier()
    return lambda req: TaskType(clf.read(req).task)


def resolve_models(names: list[str], router: LearnedRouter, config: Config) -> None:
    unknown = [n for n in names if n not in router.known_models and n not in config.models]
    if not names:
        raise InvalidInput("--models", "give at least one model name")
    if unknown:
        known = sorted(router.known_models | set(config.models))
        raise InvalidInput(
            "--models",
            f"unknown model {unknown[0]!r}: not in the router's data nor in the policy file; "
            f"known: {', '.join(known)}",
        )


def parse_lines(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"stdin line {n}", f"not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
            raise InvalidInput(f"stdin line {n}", 'expected an object with a string "prompt"')
        yield str(obj.get("id", "")), obj["prompt"]


def score_stream(
    lines: Iterable[str],
    out: TextIO,
    names: list[str],
    router: LearnedRouter,
    config: Config,
    task_of: TaskFn,
) -> int:
    count = 0
    for ident, prompt in parse_lines(lines):
        req = RequestView((Message(Role.USER, prompt),))
        task = task_of(req)
        res = router.score(req, task)
        scores: dict[str, float] = {}
        for name in names:
            if name in res.quality:
                scores[name] = round(res.quality[name], 6)
            else:
                mc = config.models[name]
                p = router.prior(mc.ability.get(task, 0.5), res.difficulty)
                scores[name] = round(p, 6)
        rec = {
            "id": ident,
            "scores": scores,
            "task": task.label,
            "difficulty": round(res.difficulty, 6),
        }
        out.write(json.dumps(rec) + "\n")
        count += 1
    return count


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in str(args.models).split(",") if n.strip()]
    router = LearnedRouter.load(args.models_dir)
    config = load_config(args.config)
    resolve_models(names, router, config)
    score_stream(sys.stdin, sys.stdout, names, router, config, task_reader())
    sys.stdout.flush()
    return 0
