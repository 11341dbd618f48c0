"""Reference traffic for calibration: prompts from a JSON-lines file, or the data's pair prompts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.eval.data import PAIR_BENCHES, default_data_dir, load_pair
from modelroute.errors import InvalidInput


def read_traffic(path: Path) -> list[str]:
    """Prompts of a JSON-lines file (``{"prompt": ...}`` per line)."""
    prompts = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    prompts.append(str(json.loads(line)["prompt"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise InvalidInput(f"{path}: line {n}", "expected JSON with a prompt") from None
    if not prompts:
        raise InvalidInput(str(path), "no prompts in the traffic file")
    return prompts


def reference_prompts(traffic: Path | None, data: Path | None, limit: int) -> tuple[list[str], str]:
    """The traffic to calibrate on (at most ``limit`` prompts, a seeded sample) and its name."""
    if traffic is not None:
        prompts, ref = read_traffic(traffic), traffic.name
    else:
        d = data or default_data_dir()
        prompts = [r.prompt for b in PAIR_BENCHES for r in load_pair(d, b)]
        ref = "routellm pair prompts (gsm8k + mmlu)"
    if len(prompts) > limit:
        keep = np.sort(np.random.default_rng(0).choice(len(prompts), limit, replace=False))
        prompts = [prompts[i] for i in keep]
        ref += f", {limit} sampled"
    return prompts, ref
