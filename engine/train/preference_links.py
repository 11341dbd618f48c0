"""Links for the models that appear only in the AlpacaEval preferences (a Bradley-Terry bridge).

AlpacaEval gives, per instruction, the probability that the judge prefers model m's answer to
``gpt-4-1106-preview``'s. If a model's success is ``sigmoid(theta_m - difficulty)``, the log-odds
that m beats GPT-4-1106 is ``theta_m - theta_gpt4``, the difference of the two success log-odds
(Bradley-Terry). So m's success link is GPT-4-1106's link plus m's preference link:
``logit p_m = (a_g + a_pm) + (b_g + b_pm) * route + c_g * level``, where ``(a_pm, b_pm)`` is fitted by
logistic regression of m's preference probabilities on the route score of the instructions (one
indicator per AlpacaEval source set while fitting). Models that have outcome data elsewhere keep
their own link; AlpacaEval's name of the baseline, ``gpt4_1106_preview``, gets GPT-4-1106's.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.eval.chat import ALPACA_FILE
from engine.eval.data import STRONG
from engine.eval.route_select import fit_link
from engine.router.route import Link

Arr = npt.NDArray[np.float64]
BASELINE = "gpt4_1106_preview"


def preferences(data_dir: Path, prompts: Sequence[str]) -> dict[str, Arr]:
    """Per model, its preference probability on each of ``prompts`` (NaN where it has none)."""
    index = {p: i for i, p in enumerate(prompts)}
    out: dict[str, Arr] = {}
    with (data_dir / ALPACA_FILE).open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            i = index.get(r["instruction"])
            if i is None:
                continue
            y = out.setdefault(r["model"], np.full(len(prompts), np.nan))
            y[i] = float(r["p_model_beats_baseline"])
    return out


def preference_link(route: Arr, pref: Arr, groups: Sequence[str]) -> tuple[float, float]:
    """``logit P(m beats GPT-4-1106) = a + b * route`` over the prompts with a preference."""
    keep = ~np.isnan(pref)
    return fit_link(route[keep], pref[keep], [g for g, k in zip(groups, keep, strict=True) if k])


def bridged_links(
    route: Arr, prefs: dict[str, Arr], groups: Sequence[str], links: dict[str, Link]
) -> dict[str, Link]:
    """A success link for every preference model without one in ``links``, and the baseline's."""
    a_g, b_g, c_g = links[STRONG]
    out: dict[str, Link] = {BASELINE: (a_g, b_g, c_g)}
    for name in sorted(prefs):
        if name in links:
            continue
        a, b = preference_link(route, prefs[name], groups)
        out[name] = (a_g + a, b_g + b, c_g)
    return out


def held_out_brier(
    route: Arr, prefs: dict[str, Arr], groups: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """Per model, the Brier score of its preference link and of its mean preference, each fitted
    on four source sets and scored on the fifth (pooled over the five)."""
    g = np.asarray(groups)
    out: dict[str, tuple[float, float]] = {}
    for name, y in sorted(prefs.items()):
        err_link, err_mean = [], []
        for held in sorted(set(groups)):
            train = (g != held) & ~np.isnan(y)
            test = (g == held) & ~np.isnan(y)
            a, b = fit_link(route[train], y[train], list(g[train]))
            p = 1.0 / (1.0 + np.exp(-(a + b * route[test])))
            err_link.append((p - y[test]) ** 2)
            err_mean.append((y[train].mean() - y[test]) ** 2)
        out[name] = (float(np.concatenate(err_link).mean()), float(np.concatenate(err_mean).mean()))
    return out
