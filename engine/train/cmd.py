"""``modelroute train``: fit the learned signals and router from the public data folder.

Each trainer is ``train(data_dir: Path, out_dir: Path) -> dict[str, object]`` named in
``TRAINERS`` as ``"module:function"``; it writes its model file(s) into ``out_dir`` and returns
metrics, which are printed as JSON. Trainers are seeded: the same data gives the same files.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from modelroute.errors import InvalidInput

REPO_ROOT = Path(__file__).resolve().parents[2]

# name -> "module:function"; run in this order when --only is not given.
TRAINERS: dict[str, str] = {
    "tokens": "engine.train.train_tokens:train",
    "task": "engine.train.train_task:train",
    "router": "engine.train.train_router:train",
    "chat_route": "engine.train.train_chat_route:train",
    "links": "engine.train.train_router:refit_links",
    "verifier": "engine.train.train_verifier:train",
    "embed_router": "engine.train.train_embed_router:train",
}
# Run only when named in --only: the slow-path router embeds ~37k prompts with MiniLM (cached
# under ~/.cache/modelroute after the first run, ~15-20 CPU-minutes on one core); chat_route
# re-chooses the chat family's knobs for the router files already in --out (``router`` ends
# with the same step); links refits the router's links on the heads already in --out (``router``
# fits them with its heads).
OPT_IN = frozenset({"embed_router", "chat_route", "links"})

Trainer = Callable[[Path, Path], dict[str, object]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "data",
        help="the public data folder (default: ../shared/data next to the repo)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "engine" / "models",
        help="where model files are written (default: engine/models)",
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(TRAINERS)}"
    )


def resolve(name: str) -> Trainer:
    module, _, func = TRAINERS[name].partition(":")
    fn: Trainer = getattr(importlib.import_module(module), func)
    return fn


def selected(only: str) -> list[str]:
    names = [n.strip() for n in only.split(",") if n.strip()] or [
        n for n in TRAINERS if n not in OPT_IN
    ]
    unknown = [n for n in names if n not in TRAINERS]
    if unknown:
        raise InvalidInput(
            "--only", f"unknown trainer {', '.join(unknown)} (known: {', '.join(TRAINERS)})"
        )
    return names


def run(args: argparse.Namespace) -> int:
    # Modest thread pools: the machine is shared and the models are small.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    data: Path = args.data
    if not data.is_dir():
        raise InvalidInput("--data", f"{data} is not a directory")
    names = selected(args.only)
    for name in names:
        start = time.perf_counter()
        metrics = resolve(name)(data, args.out)
        metrics["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps({name: metrics}, indent=1), flush=True)
    print(f"trained {', '.join(names)} into {args.out}", file=sys.stderr)
    return 0
