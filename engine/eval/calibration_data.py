"""Reference traffic for calibration: route scores plus strong/weak outcomes (known or predicted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.data import PAIR_BENCHES, STRONG, WEAK, default_data_dir, load_pair
from engine.eval.tasks import tasks_of
from engine.router.learned import LearnedRouter
from engine.signals.base import RequestView
from modelroute.domain import Message, Role, TaskType
from modelroute.errors import InvalidInput

Arr = npt.NDArray[np.float64]


def _read_traffic(path: Path) -> list[str]:
    prompts = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    prompts.append(str(json.loads(line)["prompt"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise InvalidInput(f"{path}: line {n}", "expected JSON with a prompt") from None
    return prompts


def reference_scores(traffic: Path | None, data: Path | None) -> tuple[Arr, Arr, Arr, str]:
    router = LearnedRouter.load()
    if traffic is None:
        d = data or default_data_dir()
        rows = [r for b in PAIR_BENCHES for r in load_pair(d, b)]
        prompts = [r.prompt for r in rows]
        tasks = [t for b in PAIR_BENCHES for t in tasks_of([r.prompt for r in load_pair(d, b)], b)]
        sq = np.array([r.strong for r in rows], dtype=np.float64)
        wq = np.array([r.weak for r in rows], dtype=np.float64)
        ref = "routellm pair (gsm8k + mmlu), known outcomes"
    else:
        prompts = _read_traffic(traffic)
        tasks = [TaskType.OPEN_QA] * len(prompts)
        sq = wq = np.zeros(0)
        ref = f"{traffic.name}, predicted outcomes"
    scores = np.empty(len(prompts))
    ps = np.empty(len(prompts))
    pw = np.empty(len(prompts))
    for i, (p, t) in enumerate(zip(prompts, tasks, strict=True)):
        req = RequestView((Message(Role.USER, p),))
        out = router.score(req, t)
        scores[i] = router.route_score(req, out.difficulty, t)
        ps[i], pw[i] = out.quality[STRONG], out.quality[WEAK]
    if traffic is not None:
        sq, wq = ps, pw
    return scores, sq, wq, ref
