"""The Bradley-Terry bridge from AlpacaEval preferences to success links."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.eval.data import STRONG
from engine.train.preference_links import BASELINE, bridged_links, held_out_brier


def _data(n: int = 400) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    rng = np.random.default_rng(1)
    route = rng.standard_normal(n)
    groups = [f"set{i % 4}" for i in range(n)]
    # "follows" wins more on higher route scores; "flat" wins 20% everywhere; "known" has a link
    follows = 1.0 / (1.0 + np.exp(-(-1.0 + 0.8 * route)))
    flat = np.full(n, 0.2)
    flat[::7] = np.nan  # prompts without its preference are skipped
    return route, {"follows": follows, "flat": flat, "known": np.full(n, 0.5)}, groups


def test_each_preference_model_gets_the_strong_link_plus_its_preference_link() -> None:
    route, prefs, groups = _data()
    links = {STRONG: (1.5, -0.7, 0.25), "known": (0.3, -1.0, -2.0)}
    out = bridged_links(route, prefs, groups, links)
    assert set(out) == {BASELINE, "follows", "flat"}  # "known" keeps its own link
    assert out[BASELINE] == links[STRONG]
    a, b, c = out["follows"]
    assert a == pytest.approx(1.5 - 1.0, abs=0.05) and b == pytest.approx(-0.7 + 0.8, abs=0.05)
    assert c == 0.25  # the strong model's level term, unchanged
    a, b, c = out["flat"]
    assert a == pytest.approx(1.5 + math.log(0.2 / 0.8), abs=0.05) and b == pytest.approx(
        -0.7, abs=0.05
    )
    assert c == 0.25


def test_held_out_brier_beats_the_mean_only_where_the_route_carries_signal() -> None:
    route, prefs, groups = _data()
    brier = held_out_brier(route, prefs, groups)
    link, mean = brier["follows"]
    assert link < mean
    link, mean = brier["flat"]
    assert link == pytest.approx(mean, abs=1e-4)
