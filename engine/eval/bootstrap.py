"""Paired bootstrap of one router's APGR gain over another's on the same held-out prompts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.eval.metrics import apgr, decile_curve

Arr = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Delta:
    """APGR of ``router`` minus the n-gram router's on ``bench``, with a paired bootstrap 95%
    interval over the held-out prompts (the routers fixed: test-sample noise only)."""

    bench: str
    router: str
    delta: float
    low: float
    high: float


def paired_bootstrap(
    a: Arr, b: Arr, strong: Arr, weak: Arr, n: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """APGR(a) - APGR(b) on all prompts, and the 2.5 / 97.5 percentiles over resamples."""
    rng = np.random.default_rng(seed)
    full = apgr(decile_curve(a, strong, weak)) - apgr(decile_curve(b, strong, weak))
    diffs = np.empty(n)
    for k in range(n):
        i = rng.integers(0, len(a), len(a))
        diffs[k] = apgr(decile_curve(a[i], strong[i], weak[i])) - apgr(
            decile_curve(b[i], strong[i], weak[i])
        )
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return full, float(lo), float(hi)


def apgr_interval(
    a: Arr, strong: Arr, weak: Arr, n: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """APGR(a) on all prompts and the 2.5 / 97.5 percentiles over resamples of the prompts."""
    rng = np.random.default_rng(seed)
    vals = np.empty(n)
    for k in range(n):
        i = rng.integers(0, len(a), len(a))
        vals[k] = apgr(decile_curve(a[i], strong[i], weak[i]))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return apgr(decile_curve(a, strong, weak)), float(lo), float(hi)
