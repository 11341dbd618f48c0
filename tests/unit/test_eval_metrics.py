"""Routing metrics on tiny hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from engine.eval.metrics import aiq, apgr, cpt, decile_curve, ece, savings_at, upper_hull


def test_perfect_router_recovers_the_gap_at_the_share_where_strong_is_needed() -> None:
    # 10 prompts: strong right on all, weak right on the first 6; the router scores the 4 hard ones 1.
    strong = [1] * 10
    weak = [1] * 6 + [0] * 4
    scores = [0.0] * 6 + [1.0] * 4
    c = decile_curve(scores, strong, weak)
    assert c.strong_pct[0] == pytest.approx(40.0)
    assert c.quality[0] == pytest.approx(100.0)
    assert cpt(c, 0.5) == pytest.approx(40.0)
    assert apgr(c) == pytest.approx(1.0 + (100.0 - 100.0) / 40.0)


def test_random_router_is_near_half() -> None:
    rng = np.random.default_rng(1)
    n = 40000
    strong = (rng.random(n) < 0.85).astype(np.float64)
    weak = (rng.random(n) < 0.6).astype(np.float64)
    c = decile_curve(rng.random(n), strong, weak)
    assert apgr(c) == pytest.approx(0.5, abs=0.03)
    assert cpt(c, 0.5) == pytest.approx(50.0, abs=3.0)


def test_apgr_hand_computed_three_points() -> None:
    # Curve (0.0 -> 60), (0.5 -> 90), (1.0 -> 100): AUC = .5*(60+90)/2 + .5*(90+100)/2 = 85.
    from engine.eval.metrics import PairCurve

    c = PairCurve(np.array([0.0, 50.0, 100.0]), np.array([60.0, 90.0, 100.0]), 100.0, 60.0)
    assert apgr(c) == pytest.approx((85.0 - 60.0) / 40.0)
    assert cpt(c, 0.5) == pytest.approx(100.0 / 3.0)
    assert savings_at(c, 0.95) == pytest.approx(1.0 - (0.5 + 0.5 * 0.5))


def test_upper_hull_drops_dominated_points_and_aiq_averages_it() -> None:
    hx, hy = upper_hull([1.0, 2.0, 3.0, 2.5], [0.5, 0.6, 1.0, 0.4])
    assert hx.tolist() == [1.0, 3.0]
    assert hy.tolist() == [0.5, 1.0]
    assert aiq([1.0, 3.0], [0.5, 1.0], 1.0, 3.0) == pytest.approx(0.75, abs=1e-6)


def test_ece_zero_when_calibrated_and_large_when_not() -> None:
    assert ece([0.25] * 4 + [0.75] * 4, [1, 0, 0, 0, 1, 1, 1, 0]) == pytest.approx(0.0)
    assert ece([0.95] * 4, [0, 0, 0, 0]) == pytest.approx(0.95)
