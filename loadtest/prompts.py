"""Real prompts from ../shared/data, grouped by approximate length in tokens."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from engine.signals.tokens import count_text_tokens


def _short_prompts(data: Path) -> list[str]:
    out = []
    for line in (data / "prompts" / "gsm8k" / "test.jsonl").read_text().splitlines():
        out.append(json.loads(line)["question"])
    for f in sorted((data / "routellm_pair" / "mmlu").glob("*.csv"))[:20]:
        with f.open(newline="") as fh:
            out.extend(row["prompt"] for row in csv.DictReader(fh))
    return out


def _long_texts(data: Path) -> list[str]:
    csv.field_size_limit(1 << 24)
    with (data / "routellm_pair" / "gsm8k_responses.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["prompt"] + "\n" + r["gpt-4-1106-preview_response"] for r in rows]


def _assemble(texts: list[str], target: int, count: int) -> list[str]:
    """``count`` prompts of about ``target`` tokens, each a run of consecutive real texts."""
    out: list[str] = []
    i = 0
    while len(out) < count and i < len(texts):
        parts: list[str] = ["Summarize the key steps of these worked solutions:"]
        tokens = 10
        while tokens < target and i < len(texts):
            parts.append(texts[i])
            tokens += count_text_tokens(texts[i])
            i += 1
        out.append("\n\n".join(parts))
    return out


def prompts_by_length(data: Path, count: int = 40) -> dict[int, list[str]]:
    """{~100: [...], ~1000: [...], ~8000: [...]} real prompts of about that many tokens."""
    short = [p for p in _short_prompts(data) if 60 <= count_text_tokens(p) <= 160]
    long_texts = _long_texts(data)
    return {
        100: short[:1000],
        1000: _assemble(long_texts, 1000, count),
        8000: _assemble(long_texts, 8000, count),
    }
