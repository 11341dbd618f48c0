"""Loaders for the public routing data in ``../shared/data`` (see that folder's README).

Every loader returns plain rows; nothing is cached on disk. The RouteLLM pair benchmarks drop
the prompts listed in ``*_contaminated_prompts.jsonl`` (their ``eval_prompt`` field), exactly as
RouteLLM's own evaluation does.
"""

from __future__ import annotations

import ast
import csv
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
PAIR_BENCHES = ("gsm8k", "mmlu")
ROUTERBENCH_SETS = ("arc_challenge", "mbpp", "winograde")
ROUTERBENCH_MODELS = (
    "WizardLM/WizardLM-13B-V1.2",
    "claude-instant-v1",
    "claude-v1",
    "claude-v2",
    "gpt-3.5-turbo-1106",
    "gpt-4-1106-preview",
    "meta/code-llama-instruct-34b-chat",
    "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat",
    "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
)
# multi_model_7b file stem -> benchmark name (a benchmark held out drops all of its files).
SEVEN_B_FILES: dict[str, str] = {
    "MATH_prealgebra": "math",
    "arc_challenge_test": "arc_challenge",
    "arc_challenge_train": "arc_challenge",
    "arc_easy_test": "arc_easy",
    "arc_easy_train": "arc_easy",
    "ceval": "ceval",
    "cmmlu_test": "cmmlu",
    "cmmlu_train": "cmmlu",
    "gsm8k-test": "gsm8k",
    "gsm8k-train": "gsm8k",
    "humaneval_test": "humaneval",
    "humaneval_train": "humaneval",
    "javascript": "humaneval_js",
    "mbpp": "mbpp",
    "mmlu_test": "mmlu",
    "mmlu_train": "mmlu",
}

csv.field_size_limit(1 << 30)


def default_data_dir() -> Path:
    """``$MODELROUTE_DATA`` if set, else ``../shared/data`` next to the repository."""
    env = os.environ.get("MODELROUTE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True, slots=True)
class PairRow:
    """One benchmark question with both models' correctness (and responses when known)."""

    prompt: str
    bench: str
    strong: bool
    weak: bool
    strong_response: str = ""
    weak_response: str = ""


@dataclass(frozen=True, slots=True)
class MultiRow:
    """One prompt with a quality score in [0, 1] per model (and USD cost per model if known)."""

    prompt: str
    source: str
    quality: dict[str, float]
    cost: dict[str, float] = field(default_factory=dict)
    response: dict[str, str] = field(default_factory=dict)


def _truthy(v: str) -> bool:
    return v.strip().lower() in ("true", "1", "1.0")


def contaminated(data_dir: Path, bench: str) -> set[str]:
    path = data_dir / "routellm_pair" / f"{bench}_contaminated_prompts.jsonl"
    with path.open(encoding="utf-8") as f:
        return {json.loads(line)["eval_prompt"] for line in f if line.strip()}


def load_pair(data_dir: Path, bench: str, decontaminate: bool = True) -> list[PairRow]:
    """GSM8K or MMLU rows of the strong/weak pair, contaminated prompts dropped."""
    if bench not in PAIR_BENCHES:
        raise ValueError(f"unknown pair benchmark {bench!r}")
    base = data_dir / "routellm_pair"
    files = (
        [base / "gsm8k_responses.csv"]
        if bench == "gsm8k"
        else sorted((base / "mmlu").glob("*.csv"))
    )
    drop = contaminated(data_dir, bench) if decontaminate else set()
    rows: list[PairRow] = []
    for path in files:
        with path.open(encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                if r["prompt"] in drop:
                    continue
                rows.append(
                    PairRow(
                        prompt=r["prompt"],
                        bench=bench,
                        strong=_truthy(r[STRONG]),
                        weak=_truthy(r[WEAK]),
                        strong_response=r.get(f"{STRONG}_response", "") or "",
                        weak_response=r.get(f"{WEAK}_response", "") or "",
                    )
                )
    return rows


def _rb_prompt(raw: str) -> str:
    """RouterBench stores the prompt as a Python list literal of turns; join them."""
    try:
        val = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
    if isinstance(val, list):
        return "\n".join(str(x) for x in val)
    return str(val)


def load_routerbench(data_dir: Path, sets: Iterable[str] = ROUTERBENCH_SETS) -> list[MultiRow]:
    """RouterBench 0-shot rows: quality, USD cost and response of 11 models per prompt."""
    rows: list[MultiRow] = []
    for name in sets:
        path = data_dir / "routerbench" / f"{name}_train.csv"
        with path.open(encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                if any(not r[m] or not r[f"{m}|total_cost"] for m in ROUTERBENCH_MODELS):
                    continue  # a few rows lack a model's outcome: not comparable, dropped
                rows.append(
                    MultiRow(
                        prompt=_rb_prompt(r["prompt"]),
                        source=name,
                        quality={m: float(r[m]) for m in ROUTERBENCH_MODELS},
                        cost={m: float(r[f"{m}|total_cost"]) for m in ROUTERBENCH_MODELS},
                        response={m: r.get(f"{m}|model_response", "") for m in ROUTERBENCH_MODELS},
                    )
                )
    return rows


def load_7b(data_dir: Path, exclude: Iterable[str] = ()) -> list[MultiRow]:
    """multi_model_7b rows (7 open models' scores); ``exclude`` names benchmarks to drop."""
    skip = set(exclude)
    rows: list[MultiRow] = []
    for stem, bench in SEVEN_B_FILES.items():
        if bench in skip:
            continue
        with (data_dir / "multi_model_7b" / f"{stem}.json").open(encoding="utf-8") as f:
            for item in json.load(f):
                scores = {str(k): float(v) for k, v in item["scores"].items()}
                rows.append(MultiRow(prompt=str(item["question"]), source=bench, quality=scores))
    return rows
