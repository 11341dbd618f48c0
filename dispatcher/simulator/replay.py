"""Recorded answers the simulator replays: RouterBench rows and the RouteLLM GSM8K pair.

The data is read from ``DIR/routerbench/*.csv`` (11 models' responses per prompt) and
``DIR/routellm_pair/gsm8k_responses.csv`` (two models' responses), lazily and once. A prompt that
matches a recorded prompt gets the named model's own recorded answer; any other prompt gets a row
chosen by a stable hash of the prompt, so the same prompt always gets the same answer.
"""

from __future__ import annotations

import ast
import csv
import difflib
import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.signals.tokens import count_text_tokens

ROUTERBENCH_GLOB = "routerbench/*.csv"
PAIR_FILE = "routellm_pair/gsm8k_responses.csv"
RESPONSE_SUFFIX = "|model_response"
PAIR_SUFFIX = "_response"
_PIECE = re.compile(r"\s*\S+|\s+")
_SPACE = re.compile(r"\s+")


def normalize_prompt(text: str) -> str:
    """The key a prompt is matched on: whitespace collapsed, ends stripped."""
    return _SPACE.sub(" ", text).strip()


def list_text(value: str) -> str:
    """RouterBench cells hold a Python-list-like string (``"['text']"``): the text inside it."""
    if not value.startswith("["):
        return value
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value
    if isinstance(parsed, list):
        return "".join(str(p) for p in parsed)
    return str(parsed)


@lru_cache(maxsize=8192)
def pieces(text: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Split an answer into whitespace-led pieces and the cumulative token count after each.

    The whole text counts ``count_text_tokens(text)`` tokens; the count is spread over the pieces
    in proportion to each piece's own estimate, so any prefix has a count that never decreases,
    a max_tokens cut is exact, and the chunks of a full answer add up to the whole-text count.
    """
    parts = tuple(_PIECE.findall(text))
    weights = [count_text_tokens(p) if p.strip() else 0 for p in parts]
    total_w = sum(weights)
    total = count_text_tokens(text) if total_w else 0
    cumulative: list[int] = []
    acc = 0
    for w in weights:
        acc += w
        cumulative.append(round(total * acc / total_w) if total_w else 0)
    return parts, tuple(cumulative)


@dataclass(slots=True)
class _Pool:
    """One source's rows: prompt keys and each model's answers, row-aligned."""

    prompts: list[str] = field(default_factory=list)
    answers: dict[str, list[str]] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)

    def add(self, prompt: str, answers: dict[str, str]) -> None:
        row = len(self.prompts)
        key = normalize_prompt(prompt)
        self.prompts.append(key)
        self.index.setdefault(key, row)
        for model, text in answers.items():
            self.answers.setdefault(model, [""] * row).append(text)
        for col in self.answers.values():
            if len(col) <= row:
                col.append("")


class ReplayStore:
    """Answers by (model, prompt). Thread-safe lazy load; ``load()`` may be called up front."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._pools: list[_Pool] = []
        self._loaded = False
        self._lock = threading.Lock()
        self._aliases: dict[str, str] = {}

    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            csv.field_size_limit(1 << 30)
            bench = _Pool()
            for path in sorted(self.data_dir.glob(ROUTERBENCH_GLOB)):
                _read_routerbench(path, bench)
            pair = _Pool()
            pair_path = self.data_dir / PAIR_FILE
            if pair_path.is_file():
                _read_pair(pair_path, pair)
            self._pools = [p for p in (bench, pair) if p.prompts]
            if not self._pools:
                raise FileNotFoundError(f"no replay data under {self.data_dir}")
            self._loaded = True

    @property
    def models(self) -> tuple[str, ...]:
        self.load()
        names: set[str] = set()
        for pool in self._pools:
            names.update(pool.answers)
        return tuple(sorted(names))

    def source_model(self, model: str) -> str:
        """The data model whose answers ``model`` replays: itself, or the closest name."""
        self.load()
        known = self.models
        if model in known:
            return model
        if model not in self._aliases:
            lowered = {k.lower(): k for k in known}
            match = lowered.get(model.lower())
            if match is None:
                close = difflib.get_close_matches(model.lower(), list(lowered), n=1, cutoff=0.0)
                match = lowered[close[0]]
            self._aliases[model] = match
        return self._aliases[model]

    def answer(self, model: str, prompt: str) -> str:
        """The recorded answer of ``model`` (or its closest data model) to ``prompt``."""
        self.load()
        source = self.source_model(model)
        key = normalize_prompt(prompt)
        pools = [p for p in self._pools if source in p.answers]
        for pool in pools:
            row = pool.index.get(key)
            if row is not None and pool.answers[source][row]:
                return pool.answers[source][row]
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
        pool = pools[digest % len(pools)]
        col = pool.answers[source]
        row = (digest >> 8) % len(col)
        for step in range(len(col)):
            text = col[(row + step) % len(col)]
            if text:
                return text
        return ""

    def prompts(self, model: str) -> Iterable[str]:
        """Recorded prompt keys that hold an answer of ``model`` (tests pick known prompts)."""
        self.load()
        for pool in self._pools:
            col = pool.answers.get(model)
            if col is not None:
                yield from (p for p, a in zip(pool.prompts, col, strict=True) if a)


def _read_routerbench(path: Path, pool: _Pool) -> None:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = [c for c in (reader.fieldnames or []) if c.endswith(RESPONSE_SUFFIX)]
        for row in reader:
            answers = {c[: -len(RESPONSE_SUFFIX)]: list_text(row[c] or "") for c in cols}
            pool.add(list_text(row.get("prompt") or ""), answers)


def _read_pair(path: Path, pool: _Pool) -> None:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = [c for c in (reader.fieldnames or []) if c.endswith(PAIR_SUFFIX)]
        for row in reader:
            answers = {c[: -len(PAIR_SUFFIX)]: row[c] or "" for c in cols}
            pool.add(row.get("prompt") or "", answers)
