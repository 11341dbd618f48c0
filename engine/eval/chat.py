"""Routing open-ended chat: the strong/weak pair on AlpacaEval, judged by preference.

Data (``alpaca_eval/preferences_vs_gpt4_1106_preview.csv``): for each of the 805 AlpacaEval
instructions and 14 models, the probability that the judge (GPT-4-turbo) prefers that model's
answer to ``gpt-4-1106-preview``'s, the pair's strong model. An instruction sent to the strong
model scores 0.5 (its answer against itself); sent to Mixtral-8x7B-Instruct, the pair's weak
model, it scores Mixtral's probability. Quality is the routed system's win rate against
GPT-4-1106, and the pair metrics (APGR, CPT) apply unchanged.

On these labels a longer instruction favours the weak model (the correctness benchmarks say the
opposite), so the ``chat`` route family (``engine.router.prior.CHAT_TASKS``) gets its own
knobs: ``z(d) + w * z(length)`` on the general head's difficulty, ``w`` from ``CHAT_GRID``,
standardized on the chat prompts it is fitted on, with z(length) clipped to their range (no
extrapolation past the lengths seen); or the shared knobs when they do better. The choice is the
best mean APGR over AlpacaEval's five source sets (helpful_base, koala, oasst, selfinstruct,
vicuna). Evaluated
nested: each source set is scored with the knobs fitted on the other four (``nested_routes``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.metrics import apgr, decile_curve
from engine.features import Features, featurize
from engine.router.prior import CHAT, family_for, head_for
from engine.router.route import FamilyKnobs, RouteConfig, RouteStats, route_score
from modelroute.domain import TaskType

Arr = npt.NDArray[np.float64]
ALPACA_FILE = Path("alpaca_eval") / "preferences_vs_gpt4_1106_preview.csv"
ALPACA_WEAK = "Mixtral-8x7B-Instruct-v0.1"
STRONG_SCORE = 0.5  # the strong model's answer judged against itself
CHAT_GRID = (0.5, 0.0, -0.5, -1.0, -2.0, -4.0, -8.0)


@dataclass(frozen=True, slots=True)
class ChatSet:
    """The AlpacaEval instructions with the weak model's win probability against the strong."""

    prompts: list[str]
    datasets: list[str]
    weak: Arr
    feats: list[Features]
    tasks: list[TaskType]

    @property
    def strong(self) -> Arr:
        return np.full(len(self.prompts), STRONG_SCORE)


def load_chat(data_dir: Path, tasks: Callable[[Sequence[str]], list[TaskType]]) -> ChatSet:
    """The 805 instructions in file order; ``tasks`` classifies them (the engine's classifier)."""
    prompts: list[str] = []
    datasets: list[str] = []
    weak: list[float] = []
    with (data_dir / ALPACA_FILE).open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            if r["model"] != ALPACA_WEAK:
                continue
            prompts.append(r["instruction"])
            datasets.append(r["dataset"])
            weak.append(float(r["p_model_beats_baseline"]))
    if not prompts:
        raise ValueError(f"{data_dir / ALPACA_FILE}: no rows of {ALPACA_WEAK}")
    feats = [featurize(p) for p in prompts]
    return ChatSet(prompts, datasets, np.asarray(weak), feats, tasks(prompts))


def family_knobs(
    difficulty: Arr, tasks: Sequence[TaskType], length: Arr, stats: RouteStats, w: float,
    fit: npt.NDArray[np.bool_],
) -> FamilyKnobs:  # fmt: skip
    """The chat family's knobs for length weight ``w``: ``z(d) + w * z(length)`` over the chat
    prompts of ``fit``, standardized on them (as each head's score is on its training rows), with
    z(length) clipped to their range. Without chat prompts in ``fit``: the raw weights."""
    chat = fit & np.array([family_for(t) == CHAT for t in tasks])
    mean, std = stats.heads["general"]
    lm, ls = stats.length
    zd = (difficulty[chat] - mean) / (std or 1.0)
    zl = (length[chat] - lm) / (ls or 1.0)
    if zl.size < 2:
        return FamilyKnobs(1.0, w)
    raw = zd + w * zl
    m, s = float(raw.mean()), float(raw.std()) or 1.0
    return FamilyKnobs(1.0 / s, w / s, -m / s, float(zl.min()), float(zl.max()))


def candidates(
    cfg: RouteConfig, difficulty: Arr, cs: ChatSet, length: Arr, stats: RouteStats,
    fit: npt.NDArray[np.bool_],
) -> list[RouteConfig]:  # fmt: skip
    """The shared knobs first (they win ties), then each grid weight as the chat family's,
    fitted on the ``fit`` prompts."""
    base = cfg.shared()
    return [base] + [
        base.with_family(CHAT, family_knobs(difficulty, cs.tasks, length, stats, w, fit))
        for w in CHAT_GRID
    ]


def routes(
    difficulty: Arr, tasks: Sequence[TaskType], length: Arr, cfg: RouteConfig, stats: RouteStats
) -> Arr:
    """Each prompt's route score: ``difficulty[i]`` is that of its task's head."""
    return np.array(
        [
            route_score(float(d), head_for(t), float(x), cfg, stats, family_for(t))
            for d, t, x in zip(difficulty, tasks, length, strict=True)
        ]
    )


def _mean_apgr(scores: Arr, cs: ChatSet, sets: Sequence[str]) -> float:
    ds = np.asarray(cs.datasets)
    out = []
    for name in sets:
        sel = ds == name
        out.append(apgr(decile_curve(scores[sel], cs.strong[sel], cs.weak[sel])))
    return float(np.mean(out))


def choose(
    difficulty: Arr, length: Arr, cs: ChatSet, cfg: RouteConfig, stats: RouteStats,
    sets: Sequence[str],
) -> tuple[RouteConfig, list[tuple[RouteConfig, float]]]:  # fmt: skip
    """The candidate (knobs fitted on the prompts of ``sets``) with the best mean APGR over
    ``sets`` (first among equals at 9 decimals), and every candidate with its mean."""
    fit = np.isin(np.asarray(cs.datasets), list(sets))
    cands = candidates(cfg, difficulty, cs, length, stats, fit)
    means = [
        round(_mean_apgr(routes(difficulty, cs.tasks, length, c, stats), cs, sets), 9)
        for c in cands
    ]
    return cands[int(np.argmax(means))], list(zip(cands, means, strict=True))


def nested_routes(
    difficulty: Arr, length: Arr, cs: ChatSet, cfg: RouteConfig, stats: RouteStats
) -> tuple[Arr, dict[str, RouteConfig]]:
    """Each source set's prompts scored with the knobs chosen on the other source sets."""
    sets = sorted(set(cs.datasets))
    ds = np.asarray(cs.datasets)
    out = np.zeros(len(cs.prompts))
    chosen: dict[str, RouteConfig] = {}
    for held in sets:
        best, _ = choose(difficulty, length, cs, cfg, stats, [s for s in sets if s != held])
        chosen[held] = best
        sel = ds == held
        out[sel] = routes(difficulty, cs.tasks, length, best, stats)[sel]
    return out, chosen


__all__ = [
    "ALPACA_WEAK",
    "CHAT_GRID",
    "ChatSet",
    "candidates",
    "choose",
    "family_knobs",
    "load_chat",
    "nested_routes",
    "routes",
]
