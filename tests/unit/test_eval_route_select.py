"""Knob choice of the route score (ties go to the first config in grid order) and the links."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from engine.eval.data import STRONG, WEAK, MultiRow, PairRow
from engine.eval.route_select import (
    FittedRoute,
    PairSet,
    best_config,
    fit_level_link,
    fit_link,
    fit_links,
    fit_pair_links,
    grid,
    link_probs,
)
from engine.features import DENSE_DIM, featurize
from engine.router.route import RouteConfig
from engine.train.train_router import Heads
from modelroute.domain import TaskType

Arr = npt.NDArray[np.float64]


def test_float_noise_does_not_break_a_tie_between_configs() -> None:
    cfgs = grid()
    mean = {cfg: 0.5 for cfg in cfgs}
    # the second config (c_general 1 vs 10 on the same validation scores) ties in principle
    mean[cfgs[0]] = 0.63173
    mean[cfgs[len(cfgs) // 2]] = 0.63173 + 1e-15
    assert best_config(mean) == cfgs[0]
    mean[cfgs[len(cfgs) // 2]] = 0.63173 + 1e-6
    assert best_config(mean) == cfgs[len(cfgs) // 2]


def _level_rows(n: int, seed: int = 0) -> tuple[Arr, Arr, list[str], Arr]:
    """Two sources: A easy (level -1), B hard (level +1); success follows the level across
    sources, sigmoid(0.5 - 2 * level), and not the within-source route score."""
    rng = np.random.default_rng(seed)
    level = np.r_[rng.normal(-1.0, 0.3, n), rng.normal(1.0, 0.3, n)]
    route = rng.normal(0.0, 1.0, 2 * n)
    groups = ["A"] * n + ["B"] * n
    y = (rng.random(2 * n) < 1.0 / (1.0 + np.exp(-(0.5 - 2.0 * level)))).astype(np.float64)
    return route, level, groups, y


def test_a_level_link_learns_the_level_across_sources_and_an_indicator_link_does_not() -> None:
    route, level, groups, y = _level_rows(3000)
    a, b, c = fit_level_link(route, level, y)
    assert c == pytest.approx(-2.0, abs=0.25) and b == pytest.approx(0.0, abs=0.1)
    assert a == pytest.approx(0.5, abs=0.2)
    # the indicator link folds each source's level into its intercept: nothing left to carry
    # to a new source at another level
    a_i, b_i = fit_link(route, y, groups)
    assert b_i == pytest.approx(0.0, abs=0.1)
    new_source = np.full(5, 2.0)  # harder than both
    p_level = link_probs([(a, b, c)], np.zeros(5), new_source)[:, 0]
    p_ind = link_probs([(a_i, b_i, 0.0)], np.zeros(5), new_source)[:, 0]
    truth = 1.0 / (1.0 + np.exp(-(0.5 - 4.0)))
    assert abs(p_level[0] - truth) < 0.05 < abs(p_ind[0] - truth)


def test_link_probs_is_the_link_formula() -> None:
    links = [(0.3, -0.5, 0.0), (1.0, 0.25, -1.5)]
    route, level = np.array([-1.0, 0.0, 2.0]), np.array([0.5, -0.2, 1.0])
    got = link_probs(links, route, level)
    for j, (a, b, c) in enumerate(links):
        for i in range(3):
            want = 1.0 / (1.0 + math.exp(-(a + b * route[i] + c * level[i])))
            assert got[i, j] == pytest.approx(want, rel=1e-12)


def _heads() -> Heads:
    """Math, code and general heads whose difficulty grows with the log length (dense[0] = log
    chars / 10)."""
    w_dense = np.zeros((DENSE_DIM, 3), dtype=np.float32)
    w_dense[0] = [8.0, 8.0, 8.0]
    return Heads(
        ("math", "code", "general"),
        np.zeros((8, 3), dtype=np.float32),
        w_dense,
        np.array([-3.5, -3.0, -3.5], dtype=np.float32),
    )


def test_fit_links_gives_level_links_over_all_rows_and_mixtral_its_pair_link() -> None:
    rng = np.random.default_rng(1)
    prompts = [" ".join(["word"] * int(rng.integers(1, 200))) for _ in range(400)]
    feats = [featurize(p) for p in prompts]
    fitted = FittedRoute(_heads(), {"math": (0.4, 0.2), "code": (0.5, 0.2), "general": (0.4, 0.2)},
                         {0: (4.0, 1.5), 1: (2.5, 1.0)})  # fmt: skip
    cfg = RouteConfig(1.0, 0, 0.0)
    route, level = fitted.route_and_level(feats, ["general"] * len(feats), cfg)
    p_hard = 1.0 / (1.0 + np.exp(-(1.0 - 1.5 * level)))
    multi = [
        MultiRow(p, "arc_challenge" if i % 2 else "winograde",
                 {"m": float(rng.random() < q), STRONG: float(rng.random() < q)})
        for i, (p, q) in enumerate(zip(prompts, p_hard, strict=True))
    ]  # fmt: skip
    pair = PairSet(
        [PairRow(p, "mmlu", bool(i % 3), bool(i % 2)) for i, p in enumerate(prompts[:200])],
        feats[:200],
        [TaskType.OPEN_QA] * 200,
    )
    links = fit_links(fitted, cfg, [pair], [multi], [feats])
    # the pair's weak model, with no multi-model rows: its pair link (route only)
    pl = fit_pair_links(fitted, cfg, [pair])
    assert links[WEAK] == pl[WEAK] and pl[WEAK][2] == pl[STRONG][2] == 0.0
    # the strong model: a level link over its multi-model rows and its pair rows together
    both = fit_level_link(
        np.r_[route, route[:200]], np.r_[level, level[:200]],
        np.r_[[r.quality[STRONG] for r in multi], [float(r.strong) for r in pair.rows]],
    )  # fmt: skip
    assert links[STRONG] == both and both[2] != 0.0
    assert fit_links(fitted, cfg, [], [multi], [feats])[STRONG] != both
    expected = fit_level_link(route, level, np.array([r.quality["m"] for r in multi]))
    assert links["m"] == expected and links["m"][2] != 0.0
    # (route and level are nearly collinear here; together they lower m's success with the level)
    p = link_probs([links["m"]], route, level)[:, 0]
    assert np.corrcoef(p, level)[0, 1] < -0.9
