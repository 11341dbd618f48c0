"""RouterBench scoring pieces: the picks, the AIQ gain and its interval, the folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.eval.data import ROUTERBENCH_MODELS, MultiRow
from engine.eval.multi import FORMS, LAMBDAS, aiq_gain, picks, realized
from engine.eval.multi_cv import choose_form, folds
from engine.eval.route_select import Corpus
from engine.features import featurize
from engine.router.route import RouteConfig


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three models: cheap (right 50%), mid (70%), dear (90%), independent per prompt."""
    rng = np.random.default_rng(seed)
    q = (rng.random((n, 3)) < np.array([0.5, 0.7, 0.9])).astype(np.float64)
    c = np.tile(np.array([0.1, 0.3, 5.0]), (n, 1))
    return q, c


def test_the_picks_follow_the_price_of_quality() -> None:
    util = np.tile(np.array([0.5, 0.7, 0.9]), (3, 1))
    est = np.tile(np.array([0.1, 0.3, 5.0]), (3, 1))
    pk = picks(util, est)
    assert pk.shape == (len(LAMBDAS), 3)
    assert (pk[0] == 2).all() and (pk[-1] == 0).all()  # lambda 0: the best; huge: the cheapest
    q = np.array([[0.0, 1.0, 1.0]] * 3)
    cost, qual = realized(pk, q, est)
    assert (cost[0], qual[0], qual[-1]) == (5.0, 1.0, 0.0) and cost[-1] == pytest.approx(0.1)


def test_a_router_that_knows_nothing_gains_nothing_and_the_oracle_gains() -> None:
    q, c = _data()
    one_model = np.full((len(LAMBDAS), len(q)), 1)  # always the mid model: on the hull
    g, lo, hi = aiq_gain(one_model, q, c, n_boot=200)
    assert g == pytest.approx(0.0, abs=1e-12) and lo == pytest.approx(0.0, abs=1e-12)
    oracle = picks(q, c)
    g, lo, hi = aiq_gain(oracle, q, c, n_boot=200)
    assert 0.0 < lo <= g <= hi
    # on its own points, the one-model router is a single point under the hull's area
    g_own, lo_own, _ = aiq_gain(one_model, q, c, n_boot=200, own=True)
    assert g_own < 0.0 and lo_own < 0.0
    assert aiq_gain(oracle, q, c, n_boot=200, own=True)[0] > 0.0


def test_folds_spread_each_set_evenly_and_are_reproducible() -> None:
    rows = [MultiRow(f"p{i}", "a" if i < 23 else "b", {}) for i in range(40)]
    corpus = Corpus({}, [], [], rows, [])
    f = folds(corpus, k=5)
    assert (f == folds(corpus, k=5)).all()
    for src, n in (("a", 23), ("b", 17)):
        counts = np.bincount(f[[i for i, r in enumerate(rows) if r.source == src]], minlength=5)
        assert counts.sum() == n and counts.max() - counts.min() <= 1


def _corpus(seed: int, held_noise: str | None = None) -> Corpus:
    """7B rows over four sources and RouterBench rows of the three sets with all 11 models'
    quality and cost; with ``held_noise``, that set's outcomes (and its 7B copy's) are noise."""
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "delta", "sum", "code", "why", "pick", "list", "find"]

    def text() -> str:
        return " ".join(rng.choice(words, size=int(rng.integers(3, 40))))

    seven = []
    for i in range(160):
        src = ("math", "mbpp", "arc_challenge", "mmlu")[i % 4]
        t = text()
        hard = len(t) / 300.0
        noisy = src == held_noise
        seven.append(MultiRow(t, src, {f"m{k}": float(rng.random() > (0.5 if noisy else hard))
                                       for k in range(7)}))  # fmt: skip
    bench = []
    ability = np.linspace(0.3, 0.95, len(ROUTERBENCH_MODELS))
    price = np.geomspace(1e-4, 5e-3, len(ROUTERBENCH_MODELS))
    for i in range(150):
        src = ("arc_challenge", "mbpp", "winograde")[i % 3]
        t = text()
        hard = len(t) / 300.0
        p = 0.5 if src == held_noise else np.clip(ability - hard * (1 - ability), 0.0, 1.0)
        q = {
            m: float(rng.random() < pk)
            for m, pk in zip(ROUTERBENCH_MODELS, np.broadcast_to(p, ability.shape), strict=True)
        }
        c = {
            m: float(x * (1 + len(t) / 200)) for m, x in zip(ROUTERBENCH_MODELS, price, strict=True)
        }
        bench.append(MultiRow(t, src, q, c))
    return Corpus({}, seven, [featurize(r.prompt) for r in seven], bench,
                  [featurize(r.prompt) for r in bench])  # fmt: skip


def test_the_nested_form_choice_never_reads_the_held_out_set() -> None:
    cfg = RouteConfig(1.0, 0, 0.5)
    form, inner = choose_form(_corpus(3), cfg, "mbpp")
    assert form in FORMS and set(inner) == set(FORMS)
    again = choose_form(_corpus(3, held_noise="mbpp"), cfg, "mbpp")
    assert again == (form, inner)
    # the same noise in a set the choice does read (winograde, for mbpp held out) changes it
    assert choose_form(_corpus(3, held_noise="winograde"), cfg, "mbpp")[1] != inner


def test_the_routerbench_tables_say_the_gain_and_the_nested_choice(tmp_path: Path) -> None:
    from engine.eval.cascade import CascadeResult
    from engine.eval.multi import LINKED, NESTED, ROUTE_ONLY, MultiResult
    from engine.eval.multi_cv import MultiCvResult
    from engine.eval.report import multi_cv_section, multi_table, plots

    curve = np.array([1e-4, 1e-3, 5e-3]), np.array([0.6, 0.8, 0.88])
    inner = {f: 0.8 + 0.01 * k for k, f in enumerate(FORMS)}
    m = MultiResult(
        ROUTERBENCH_MODELS, np.geomspace(1e-4, 5e-3, 11), np.linspace(0.5, 0.88, 11),
        *curve, *curve, *curve, {"zero router (single-model hull)": 0.8182, LINKED: 0.8246}, 2205,
        {f"{LINKED}, own points only": (0.0064, 0.0032, 0.0097), NESTED: (0.0, -0.001, 0.001)},
        {"mbpp": (ROUTE_ONLY, inner)},
    )  # fmt: skip
    text = multi_table(m)
    assert "| zero router (single-model hull) | 0.8182 |" in text
    assert "as the engine), own points only, minus the zero router: +0.0064, 95% bootstrap " \
           "interval over the prompts [+0.0032, +0.0097]" in text  # fmt: skip
    assert "mbpp held out" in text and "**route only, per-source indicators**" in text
    cv = MultiCvResult({LINKED: 0.8341}, 2205, {LINKED: (0.0159, 0.0127, 0.0212)})
    section = multi_cv_section(cv)
    assert "5 folds" in section and "+0.0159" in section and "held out" not in section
    assert multi_cv_section(None) == ""
    arr = np.array([0.0, 0.5, 1.0])
    cascade = CascadeResult("gsm8k", 3, 0.03, 0.6, 0.86, arr, arr, arr, arr, (0.7, 0.8))
    files = plots(tmp_path, [], m, [cascade])
    assert "routerbench_cost_quality.png" in files
    assert (tmp_path / "routerbench_cost_quality.png").read_bytes()[:4] == b"\x89PNG"


def test_gpt4_takes_the_engines_link_in_every_form() -> None:
    """GPT-4-1106 is scored as the engine takes it: by default its level link over the
    RouterBench training rows and the pair rows; with ``pair_links``, its pair link."""
    from engine.eval.data import STRONG, PairRow
    from engine.eval.multi import scored_links
    from engine.eval.route_select import (
        PairSet,
        fit_level_link,
        fit_pair_links,
        fit_route,
        link_probs,
    )
    from engine.train.train_router import head_of_source
    from modelroute.domain import TaskType

    corpus = _corpus(5)
    cfg = RouteConfig(1.0, 0, 0.5)
    fitted = fit_route(corpus, ["mbpp"], cfg.c_general)
    rng = np.random.default_rng(9)
    texts = [r.prompt for r in corpus.seven[:80]]
    pair = PairSet([PairRow(t, "mmlu", bool(rng.random() < 0.8), bool(rng.random() < 0.6))
                    for t in texts], [featurize(t) for t in texts], [TaskType.OPEN_QA] * 80)  # fmt: skip
    train = [corpus.bench[i] for i, r in enumerate(corpus.bench) if r.source != "mbpp"]
    test = [i for i, r in enumerate(corpus.bench) if r.source == "mbpp"]
    train_feats = [corpus.bench_feats[i] for i, r in enumerate(corpus.bench) if r.source != "mbpp"]
    feats = [corpus.bench_feats[i] for i in test]
    args = (fitted, cfg, train, train_feats, [corpus.bench[i] for i in test], feats, [pair])
    route, level = fitted.route_and_level(feats, ["code"] * len(test), cfg)
    r_tr, l_tr = fitted.route_and_level(train_feats, [head_of_source(r.source) for r in train], cfg)
    r_p, l_p = fitted.route_and_level(pair.feats, ["general"] * 80, cfg)
    level_link = fit_level_link(
        np.r_[r_tr, r_p], np.r_[l_tr, l_p],
        np.r_[[r.quality[STRONG] for r in train], [float(x.strong) for x in pair.rows]],
    )  # fmt: skip
    k = ROUTERBENCH_MODELS.index(STRONG)
    for pair_links, link in ((False, level_link),
                             (True, fit_pair_links(fitted, cfg, [pair])[STRONG])):  # fmt: skip
        forms = scored_links(*args, pair_links=pair_links)
        want = link_probs([link], route, level)[:, 0]
        assert set(forms) == set(FORMS)
        for p in forms.values():
            np.testing.assert_allclose(p[:, k], want, rtol=1e-12)
    # without the pair, GPT-4-1106 is linked on the RouterBench rows alone
    alone = scored_links(*args[:6])
    assert not np.allclose(alone[FORMS[0]][:, k], link_probs([level_link], route, level)[:, 0])
