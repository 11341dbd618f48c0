"""Leave-one-benchmark-out routers for the strong/weak pair, and their scores on the held-out set.

For a held-out benchmark B (GSM8K or MMLU): the difficulty heads are trained on the 7B-model data
without B's files, the per-model heads on the other pair benchmark plus the 7B and RouterBench
rows without B; nothing in a router saw B.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.data import PAIR_BENCHES, STRONG, WEAK, MultiRow, PairRow, load_7b, load_pair
from engine.eval.metrics import PairCurve, apgr, cpt, decile_curve, savings_at
from engine.eval.tasks import head_for, sensitivity, tasks_of
from engine.features import Features, featurize
from engine.train.train_router import fit_difficulty, fit_quality, length_stats

Arr = npt.NDArray[np.float64]
ROUTERS = (
    "random",
    "length only",
    "task only",
    "difficulty only",
    "n-gram per-model heads",
    "combined (length + difficulty)",
    "oracle",
)


@dataclass(frozen=True, slots=True)
class PairResult:
    bench: str
    router: str
    curve: PairCurve
    apgr: float
    cpt50: float
    cpt80: float
    savings95: float


def zscore(x: Arr, mean: float, std: float) -> Arr:
    return (x - mean) / (std or 1.0)


def lobo_scores(
    data_dir: Path, held: str, progress: bool = True
) -> tuple[list[PairRow], dict[str, Arr]]:
    """Scores of every baseline router on ``held``, each trained without ``held``."""
    from tqdm import tqdm

    other = [b for b in PAIR_BENCHES if b != held]
    test = load_pair(data_dir, held)
    train_pair = [r for b in other for r in load_pair(data_dir, b)]
    seven = load_7b(data_dir, exclude=[held])

    def feats(rows: Sequence[PairRow] | Sequence[MultiRow], what: str) -> list[Features]:
        it = tqdm(rows, desc=f"featurize {what}", leave=False, disable=not progress)
        return [featurize(r.prompt) for r in it]

    tf, pf, sf = feats(test, held), feats(train_pair, "pair train"), feats(seven, "7B")
    diff = fit_difficulty(seven, sf)
    qual = fit_quality(train_pair, pf, seven, sf)
    tasks = tasks_of([r.prompt for r in test], held)
    heads = [diff.labels.index(head_for(t)) for t in tasks]
    d_test = diff.predict(tf)[np.arange(len(test)), heads].astype(np.float64)
    train_tasks = tasks_of([r.prompt for r in train_pair], other[0])
    d_all = diff.predict(pf)
    d_train = d_all[np.arange(len(pf)), [diff.labels.index(head_for(t)) for t in train_tasks]]
    d_mean, d_std = float(d_train.mean()), float(d_train.std())
    l_mean, l_std = length_stats(pf)
    length = np.array([f.dense[0] for f in tf], dtype=np.float64)
    q = qual.predict(tf)
    ps, pw = q[:, qual.labels.index(STRONG)], q[:, qual.labels.index(WEAK)]
    rng = np.random.default_rng(0)
    strong = np.array([r.strong for r in test], dtype=np.float64)
    weak = np.array([r.weak for r in test], dtype=np.float64)
    scores: dict[str, Arr] = {
        "random": rng.random(len(test)),
        "length only": length,
        "task only": np.array([sensitivity(t) for t in tasks]) + 1e-3 * rng.random(len(test)),
        "difficulty only": d_test,
        "n-gram per-model heads": (ps - pw).astype(np.float64),
        "combined (length + difficulty)": zscore(length, l_mean, l_std)
        + zscore(d_test, d_mean, d_std),
        "oracle": (strong - weak) + 1e-3 * rng.random(len(test)),
    }
    return test, scores


def evaluate_pair(data_dir: Path, progress: bool = True) -> list[PairResult]:
    out: list[PairResult] = []
    for held in PAIR_BENCHES:
        rows, scores = lobo_scores(data_dir, held, progress)
        s = [r.strong for r in rows]
        w = [r.weak for r in rows]
        for name in ROUTERS:
            c = decile_curve(scores[name], s, w)
            out.append(PairResult(held, name, c, apgr(c), cpt(c, 0.5), cpt(c, 0.8), savings_at(c)))
    return out
