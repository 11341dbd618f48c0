"""``modelroute calibrate --target strong-share=0.3|savings=0.5|quality-floor=0.95``.

Scores reference traffic with the learned router's combined route score (default: the pair
benchmarks' prompts from the data, whose outcomes are known; ``--traffic FILE`` = JSON lines
with ``prompt``, outcomes then come from the router's own predictions), finds the threshold
that meets the target and writes it into the policy file's ``[router]`` table.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

from modelroute.config import DEFAULT_CONFIG_PATH, load_config
from modelroute.errors import InvalidInput

Arr = npt.NDArray[np.float64]
KINDS = ("strong-share", "savings", "quality-floor")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", required=True, help="strong-share=X | savings=X | quality-floor=X"
    )
    parser.add_argument("--traffic", type=Path, default=None, help="JSON lines with a prompt field")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG_PATH, help="policy file to update"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="data folder (default: ../shared/data)"
    )


def parse_target(text: str) -> tuple[str, float]:
    kind, _, val = text.partition("=")
    try:
        x = float(val)
    except ValueError:
        x = -1.0
    if kind not in KINDS or not 0.0 <= x <= 1.0:
        raise InvalidInput("--target", f"expected one of {', '.join(KINDS)} = a number in [0, 1]")
    return kind, x


def threshold_for(
    kind: str, x: float, scores: Arr, strong_q: Arr, weak_q: Arr, cost_ratio: float
) -> float:
    """Route-score threshold (strong when score >= threshold) meeting the target."""
    s = np.sort(scores)[::-1]
    if kind == "savings":  # cost = share*c_s + (1-share)*c_w; savings = 1 - cost/c_s
        kind, x = "strong-share", max(0.0, (1.0 - x - cost_ratio) / (1.0 - cost_ratio))
    if kind == "strong-share":
        k = round(x * len(s))
        return float(s[k - 1]) if k > 0 else float(s[0]) + 1e-9
    order = np.argsort(-scores)
    gain = (strong_q - weak_q)[order]
    quality = weak_q.sum() + np.concatenate([[0.0], np.cumsum(gain)])
    ok = np.nonzero(quality >= x * strong_q.sum())[0]
    k = int(ok[0]) if len(ok) else len(s)
    return float(s[k - 1]) if k > 0 else float(s[0]) + 1e-9


def write_router_table(path: Path, threshold: float, target: str, reference: str) -> None:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^\[router\]\n.*?(?=^\[|\Z)", "", text).rstrip("\n") + "\n"
    text += (
        f"\n[router]\n# Set by `modelroute calibrate --target {target}`.\n"
        f"strong_threshold = {threshold:.6f}\ntarget = {json.dumps(target)}\n"
        f"reference = {json.dumps(reference)}\n"
    )
    path.write_text(text, encoding="utf-8")
    load_config(path)  # fails loudly if the result is not a valid policy


def run(args: argparse.Namespace) -> int:
    from engine.eval.calibration_data import reference_scores

    kind, x = parse_target(str(args.target))
    cfg = load_config(args.config)
    strong, weak = (
        cfg.models.get("gpt-4-1106-preview"),
        cfg.models.get("mistralai/Mixtral-8x7B-Instruct-v0.1"),
    )
    ratio = (weak.output_usd_per_mtok / strong.output_usd_per_mtok) if strong and weak else 0.0
    scores, sq, wq, ref = reference_scores(args.traffic, args.data)
    t = threshold_for(kind, x, scores, sq, wq, ratio)
    write_router_table(args.config, t, str(args.target), ref)
    share = float((scores >= t).mean())
    print(
        json.dumps(
            {"strong_threshold": round(t, 6), "strong_share": round(share, 4), "reference": ref}
        )
    )
    return 0
