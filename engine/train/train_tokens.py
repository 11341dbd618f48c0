"""Fit the token-count estimator (``engine/models/tokens.json``) against exact BPE counts.

Prompts come from every corpus in the data folder; a prompt is held out when the crc32 of its
text falls in the held-out quarter, so the split is the same on every run. Coefficients are
fitted by least squares on relative error (each row divided by its true count) for each
reference encoding, then scored on the held-out prompts per corpus.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.signals.tokens import FEATURE_NAMES, text_features
from engine.train import corpora
from engine.train.corpora import Prompt
from engine.train.tiktoken_offline import ENCODINGS, count

SEED = 20261128
TRAIN_CAP = 1500
EVAL_CAP = 1000
RIDGE = 1e-3


def _sources(data: Path) -> dict[str, Callable[[], list[Prompt]]]:
    return {
        "gsm8k": lambda: corpora.gsm8k(data),
        "mmlu": lambda: corpora.mmlu(data),
        "human_eval": lambda: corpora.human_eval(data),
        "mbpp": lambda: corpora.mbpp(data),
        "routerbench": lambda: corpora.routerbench(data),
        "routerbench_responses": lambda: corpora.routerbench_responses(data),
        "alpaca_eval": lambda: corpora.alpaca_eval(data),
        "vicuna": lambda: corpora.vicuna(data),
        "alpaca_seed": lambda: corpora.alpaca_seed(data),
        "javascript": lambda: corpora.multi_model_7b(data, "javascript"),
        "cmmlu": lambda: corpora.multi_model_7b(data, "cmmlu_test"),
    }


def is_held_out(text: str) -> bool:
    return zlib.crc32(text.encode("utf-8")) % 4 == 0


def split_corpus(prompts: list[Prompt], rng: random.Random) -> tuple[list[str], list[str]]:
    texts = sorted({p.text for p in prompts if p.text.strip()})
    train = [t for t in texts if not is_held_out(t)]
    held = [t for t in texts if is_held_out(t)]
    rng.shuffle(train)
    rng.shuffle(held)
    return train[:TRAIN_CAP], held[:EVAL_CAP]


def long_prompts(held: dict[str, list[str]], rng: random.Random, n: int = 40) -> list[str]:
    """Held-out prompts of several corpora glued into ~16-40k-character prompts (~4-10k tokens)."""
    pool = [t for texts in held.values() for t in texts]
    out: list[str] = []
    for _ in range(n):
        target = rng.randint(16_000, 40_000)
        parts: list[str] = []
        size = 0
        while size < target:
            parts.append(rng.choice(pool))
            size += len(parts[-1]) + 2
        out.append("\n\n".join(parts))
    return out


def fit(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Least squares on relative error, with a small ridge for collinear counts."""
    a = x / y[:, None]
    lhs = a.T @ a + RIDGE * np.eye(a.shape[1])
    rhs = a.T @ np.ones(len(y))
    return np.asarray(np.linalg.solve(lhs, rhs), dtype=np.float64)


def score(est: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> dict[str, float]:
    rel = np.abs(np.maximum(np.rint(est), 1.0) - y) / y
    return {
        "n": float(len(y)),
        "mean_tokens": round(float(y.mean()), 1),
        "mape_pct": round(float(rel.mean() * 100), 2),
        "within_10pct": round(float((rel <= 0.10).mean()), 4),
        "p95_err_pct": round(float(np.quantile(rel, 0.95) * 100), 2),
    }


def _matrix(texts: list[str]) -> npt.NDArray[np.float64]:
    return np.asarray([text_features(t) for t in texts], dtype=np.float64)


def _counts(enc: str, texts: list[str]) -> npt.NDArray[np.float64]:
    return np.asarray([max(count(enc, t), 1) for t in texts], dtype=np.float64)


def train(data_dir: Path, out_dir: Path) -> dict[str, object]:
    rng = random.Random(SEED)
    train_x: list[str] = []
    held: dict[str, list[str]] = {}
    for name, load in _sources(data_dir).items():
        tr, ho = split_corpus(load(), rng)
        train_x.extend(tr)
        held[name] = ho
    held["long_mixed"] = long_prompts(held, rng)
    x = _matrix(train_x)
    held_x = {name: _matrix(texts) for name, texts in held.items()}
    model: dict[str, object] = {"features": list(FEATURE_NAMES), "encodings": {}}
    metrics: dict[str, object] = {"train_prompts": len(train_x)}
    for enc in ENCODINGS:
        coef = fit(x, _counts(enc, train_x))
        table: dict[str, dict[str, float]] = {}
        for name, texts in held.items():
            table[name] = score(held_x[name] @ coef, _counts(enc, texts))
        model["encodings"][enc] = {"coef": [round(float(c), 6) for c in coef]}  # type: ignore[index]
        metrics[enc] = table
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokens.json").write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    return metrics
