"""Readers for the public prompt corpora in ``../shared/data`` (read-only, never copied).

Each reader returns ``Prompt`` records: the text, the corpus it came from and, where the corpus
carries one, a label (a category, subject or flag) that the task trainer maps to a task type.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

csv.field_size_limit(1 << 30)


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    corpus: str
    label: str = ""


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _csv(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def _first(cell: str) -> str:
    """RouterBench cells hold a Python list literal of strings; return its first element."""
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        return cell
    if isinstance(value, list) and value:
        return str(value[0])
    return str(value)


def gsm8k(data: Path) -> list[Prompt]:
    out: list[Prompt] = []
    for split in ("train", "test"):
        for row in _jsonl(data / "prompts" / "gsm8k" / f"{split}.jsonl"):
            out.append(Prompt(str(row["question"]), "gsm8k", split))
    return out


def mmlu(data: Path) -> list[Prompt]:
    out: list[Prompt] = []
    for path in sorted((data / "routellm_pair" / "mmlu").glob("*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        out.extend(Prompt(row["prompt"], "mmlu", subject) for row in _csv(path))
    return out


def human_eval(data: Path) -> list[Prompt]:
    path = data / "prompts" / "human_eval" / "HumanEval.jsonl.gz"
    return [Prompt(str(row["prompt"]), "human_eval") for row in _jsonl(path)]


def mbpp(data: Path) -> list[Prompt]:
    rows = json.loads((data / "multi_model_7b" / "mbpp.json").read_text(encoding="utf-8"))
    return [Prompt(str(r["question"]), "mbpp") for r in rows]


def routerbench(data: Path) -> list[Prompt]:
    """RouterBench prompts; the label is the eval name (arc_challenge, mbpp, winograde)."""
    out: list[Prompt] = []
    for path in sorted((data / "routerbench").glob("*_train.csv")):
        name = path.stem.removesuffix("_train")
        out.extend(Prompt(_first(row["prompt"]), "routerbench", name) for row in _csv(path))
    return out


def routerbench_responses(data: Path, limit_per_file: int = 300) -> list[Prompt]:
    """Real model answers stored in the RouterBench rows (one model per row, rotating)."""
    out: list[Prompt] = []
    for path in sorted((data / "routerbench").glob("*_train.csv")):
        name = path.stem.removesuffix("_train")
        for i, row in enumerate(_csv(path)):
            if i >= limit_per_file:
                break
            cols = sorted(k for k in row if k.endswith("|model_response"))
            for j in range(len(cols)):
                text = _first(row[cols[(i + j) % len(cols)]])
                if len(text) > 200:
                    out.append(Prompt(text, "routerbench_responses", name))
                    break
    return out


def alpaca_eval(data: Path) -> list[Prompt]:
    """The 805 AlpacaEval instructions; the label is the source dataset (koala, oasst, ...)."""
    seen: dict[str, str] = {}
    for row in _csv(data / "alpaca_eval" / "preferences_vs_gpt4_1106_preview.csv"):
        seen.setdefault(row["instruction"], row["dataset"])
    return [Prompt(text, "alpaca_eval", ds) for text, ds in seen.items()]


def vicuna(data: Path) -> list[Prompt]:
    out: list[Prompt] = []
    for row in _jsonl(data / "prompts" / "vicuna_bench" / "question.jsonl"):
        turns = row["turns"]
        assert isinstance(turns, list)
        out.append(Prompt(str(turns[0]), "vicuna", str(row["category"])))
    return out


def alpaca_seed(data: Path) -> list[Prompt]:
    """Seed tasks: instruction plus its first input; label is ``name|cls`` or ``name|gen``."""
    out: list[Prompt] = []
    for row in _jsonl(data / "prompts" / "alpaca_seed" / "seed_tasks.jsonl"):
        instances = row["instances"]
        assert isinstance(instances, list)
        inp = str(instances[0].get("input", "")) if instances else ""
        text = str(row["instruction"]) + (f"\n\n{inp}" if inp.strip() else "")
        flag = "cls" if row["is_classification"] else "gen"
        out.append(Prompt(text, "alpaca_seed", f"{row['name']}|{flag}"))
    return out


def multi_model_7b(data: Path, name: str) -> list[Prompt]:
    """Questions of one ``multi_model_7b/<name>.json`` file (label = file name)."""
    rows = json.loads((data / "multi_model_7b" / f"{name}.json").read_text(encoding="utf-8"))
    return [Prompt(str(r["question"]), "multi_model_7b", name) for r in rows]
