"""Routing metrics.

Pair metrics follow RouteLLM (arXiv 2406.18665, ``routellm/evals``): thresholds at the deciles of
the router's score (11 quantiles 0, 0.1, ..., 1); at each, prompts scoring >= threshold go to the
strong model; the curve is quality (%) against the share of strong calls (%), integrated with the
trapezoid rule over the range the curve covers. APGR = (AUC - weak area) / (strong area - weak
area) over that same range; CPT(x%) = the strong-call share at which the curve reaches
weak + x * (strong - weak), by linear interpolation.

Multi-model metrics follow RouterBench (arXiv 2403.12031): a router is a set of (cost, quality)
points; its non-decreasing convex hull is integrated over a cost range and divided by its width
(AIQ). The "zero router" is the hull of the single models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Arr = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PairCurve:
    strong_pct: Arr  # ascending, in %
    quality: Arr  # in %, same order
    strong_acc: float  # in %
    weak_acc: float  # in %


def decile_curve(
    scores: Sequence[float] | Arr,
    strong_ok: Sequence[float] | Arr,
    weak_ok: Sequence[float] | Arr,
    n_bins: int = 10,
) -> PairCurve:
    """Quality vs share of strong calls at the ``n_bins + 1`` quantile thresholds of ``scores``."""
    s = np.asarray(scores, dtype=np.float64)
    strong = np.asarray(strong_ok, dtype=np.float64)
    weak = np.asarray(weak_ok, dtype=np.float64)
    thresholds = np.quantile(s, np.linspace(0.0, 1.0, n_bins + 1))
    pct = np.empty(len(thresholds))
    qual = np.empty(len(thresholds))
    for i, t in enumerate(thresholds):
        sel = s >= t
        pct[i] = sel.mean() * 100.0
        qual[i] = np.where(sel, strong, weak).mean() * 100.0
    order = np.argsort(pct, kind="stable")
    return PairCurve(pct[order], qual[order], strong.mean() * 100.0, weak.mean() * 100.0)


def auc(curve: PairCurve) -> float:
    return float(np.trapezoid(curve.quality, curve.strong_pct / 100.0))


def apgr(curve: PairCurve) -> float:
    """Average performance gap recovered (1 = as good as always-strong at every share)."""
    x = curve.strong_pct / 100.0
    weak_area = float(np.trapezoid(np.full(len(x), curve.weak_acc), x))
    strong_area = float(np.trapezoid(np.full(len(x), curve.strong_acc), x))
    gap = strong_area - weak_area
    return (auc(curve) - weak_area) / gap if gap else float("nan")


def cpt(curve: PairCurve, frac: float) -> float:
    """Share of strong calls (%) needed to recover ``frac`` of the weak-strong quality gap."""
    target = curve.weak_acc + frac * (curve.strong_acc - curve.weak_acc)
    return float(np.interp(target, curve.quality, curve.strong_pct))


def savings_at(curve: PairCurve, quality_frac: float = 0.95) -> float:
    """Fraction of strong calls saved vs always-strong while keeping ``quality_frac`` of its
    quality (1 - smallest strong share whose interpolated quality reaches the floor)."""
    floor = quality_frac * curve.strong_acc
    x, y = curve.strong_pct / 100.0, curve.quality
    if y[0] >= floor:
        return float(1.0 - x[0])
    for i in range(1, len(x)):
        if y[i] >= floor:
            t = (floor - y[i - 1]) / (y[i] - y[i - 1]) if y[i] != y[i - 1] else 1.0
            return float(1.0 - (x[i - 1] + t * (x[i] - x[i - 1])))
    return 0.0


def upper_hull(cost: Sequence[float] | Arr, quality: Sequence[float] | Arr) -> tuple[Arr, Arr]:
    """Non-decreasing upper convex hull of (cost, quality) points, sorted by cost."""
    c = np.asarray(cost, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    order = np.lexsort((-q, c))
    pts: list[tuple[float, float]] = []
    best = -np.inf
    for i in order:  # Pareto filter: cheaper-first, keep only strict quality gains
        if q[i] > best:
            pts.append((float(c[i]), float(q[i])))
            best = float(q[i])
    hull: list[tuple[float, float]] = []
    for p in pts:  # monotone-chain upper hull
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    arr = np.asarray(hull, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def aiq(
    cost: Sequence[float] | Arr, quality: Sequence[float] | Arr, c_min: float, c_max: float
) -> float:
    """Average quality of the hull over [c_min, c_max]: flat above its costliest point (one can
    always spend less), zero below its cheapest (that budget is out of its reach)."""
    hx, hy = upper_hull(cost, quality)
    grid = np.linspace(c_min, c_max, 512)
    return float(np.trapezoid(np.interp(grid, hx, hy, left=0.0), grid) / (c_max - c_min))


def ece(prob: Sequence[float] | Arr, outcome: Sequence[float] | Arr, n_bins: int = 10) -> float:
    """Expected calibration error with equal-width bins."""
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)
