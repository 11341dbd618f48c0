"""Cross-validated regularization of the difficulty heads, and the variants table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import spearmanr

from engine.eval.embed_compare import (
    EMBED_CV,
    EMBED_ROUTE,
    ENSEMBLE_CV,
    NGRAM_ROUTE,
    RANK_CV,
    SUM_CV,
    build_view,
    compare,
    fit_matrix_route,
)
from engine.eval.head_cv import (
    CV_GRID,
    cv_c,
    fold_ids,
    spearman,
    within_source_spearman,
)
from engine.eval.metrics import PairCurve
from engine.eval.pair import PairResult
from engine.eval.variants import note_of, variants_table
from tests.unit.test_eval_embed_compare import _perturb_held_out, synthetic

Arr = npt.NDArray[np.float64]


def test_spearman_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, 200).astype(np.float64)
    b = a + rng.normal(size=200)
    want = float(spearmanr(a, b).statistic)
    assert abs(spearman(a, b) - want) < 1e-12
    assert spearman(np.arange(5.0), -np.arange(5.0)) == -1.0
    assert spearman(np.ones(5), np.arange(5.0)) == 0.0


def test_within_source_spearman_ignores_the_offset_between_sources() -> None:
    # within each source the prediction ranks perfectly; across them it is backwards
    target = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    pred = np.array([5.1, 5.2, 5.3, 5.4, 5.5, 0.1, 0.2, 0.3, 0.4, 0.5])
    sources = ["a"] * 5 + ["b"] * 5
    assert within_source_spearman(pred, target, sources) == 1.0
    assert spearman(pred, target) < 0.0
    # a source with fewer than MIN_SOURCE_ROWS rows is not scored
    assert within_source_spearman(pred[:7], target[:7], sources[:7]) == 1.0


def test_folds_hold_every_source_evenly() -> None:
    sources = ["a"] * 50 + ["b"] * 23
    f = fold_ids(sources, k=5, seed=1)
    for s, n in (("a", 50), ("b", 23)):
        counts = np.bincount(f[np.array(sources) == s], minlength=5)
        assert counts.max() - counts.min() <= 1 and counts.sum() == n
    np.testing.assert_array_equal(f, fold_ids(sources, k=5, seed=1))


def _fake_fit(noise_grows_with_c: bool) -> Callable[[Any, Arr, float], Callable[[Any], Arr]]:
    """A 'model' whose prediction is column 0 (the target) plus c-dependent noise (column 1)."""

    def fit(x: Any, y: Arr, c: float) -> Callable[[Any], Arr]:
        k = c if noise_grows_with_c else 1.0 / c
        return lambda xx: xx[:, 0] + 0.05 * k * xx[:, 1]

    return fit


def test_cv_picks_the_c_whose_held_out_ranking_is_best() -> None:
    rng = np.random.default_rng(2)
    y = rng.random(300)
    x = np.column_stack([y, rng.normal(size=300)])
    sources = ["s"] * 300
    assert cv_c(x, y, sources, _fake_fit(True)).c == min(CV_GRID)
    assert cv_c(x, y, sources, _fake_fit(False)).c == max(CV_GRID)
    flat = cv_c(x, y, sources, lambda xx, yy, c: lambda z: z[:, 0])
    assert flat.c == min(CV_GRID)  # ties: the stronger regularization
    assert [c for c, _ in flat.scores] == list(CV_GRID)


def test_cv_regularizes_a_head_with_many_noise_columns_and_few_rows() -> None:
    from engine.eval.embed_compare import fit_matrix_head

    rng = np.random.default_rng(3)
    n, d = 200, 150
    x = rng.normal(size=(n, d))
    y = 1.0 / (1.0 + np.exp(-0.6 * x[:, 0] + 0.4 * rng.normal(size=n)))
    res = cv_c(x, y, ["s"] * n, lambda xx, yy, c: fit_matrix_head(xx, yy, c=c).predict)
    scores = dict(res.scores)
    assert res.c < 1.0
    assert scores[res.c] > scores[10.0]


def test_cv_view_records_the_chosen_c_of_math_and_code_heads_only() -> None:
    corpus, emb = synthetic(4)
    view = build_view(EMBED_CV, corpus, emb)
    assert view.cv_heads and view.kind == EMBED_CV
    fitted = fit_matrix_route(view, corpus.seven, corpus.bench, ["gsm8k"], 1.0)
    assert set(fitted.head_c) == {"math", "code"}
    assert all(c in CV_GRID for c in fitted.head_c.values())
    plain = fit_matrix_route(
        build_view("embedding", corpus, emb), corpus.seven, corpus.bench, [], 1.0
    )
    assert plain.head_c == {}


def test_cv_choice_never_sees_the_held_out_benchmark() -> None:
    corpus, emb = synthetic(5)
    kinds = ("n-gram", "embedding", EMBED_CV)
    base = compare(corpus, emb, kinds=kinds, progress=False, bootstrap=0)
    noisy = compare(
        *_perturb_held_out(corpus, emb, "gsm8k"), kinds=kinds, progress=False, bootstrap=0
    )
    assert base.head_c["gsm8k"] == noisy.head_c["gsm8k"]
    by = {(r.bench, r.router): r for r in base.results}
    assert ("gsm8k", ENSEMBLE_CV) in by and ("mmlu", f"{EMBED_CV}: length + difficulty") in by
    assert ("gsm8k", RANK_CV) in by and ("mmlu", SUM_CV) in by


def test_rank_mean_ignores_each_route_s_scale() -> None:
    from engine.eval.embed_compare import _mix

    corpus, _ = synthetic(6)
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=300), rng.normal(size=300)
    sc = {NGRAM_ROUTE: a, EMBED_ROUTE: b, f"{EMBED_CV}: length + difficulty": b}
    again = {NGRAM_ROUTE: np.exp(3 * a), EMBED_ROUTE: b, f"{EMBED_CV}: length + difficulty": b}
    _mix(corpus, "mmlu", sc, [])
    _mix(corpus, "mmlu", again, [])
    np.testing.assert_allclose(sc[RANK_CV], again[RANK_CV])
    assert sc[RANK_CV].min() >= 0.0 and sc[RANK_CV].max() < 1.0
    np.testing.assert_allclose(sc[SUM_CV], (a + b) / 2.0)
    assert not np.allclose(sc[ENSEMBLE_CV], again[ENSEMBLE_CV])


def _result(bench: str, router: str, apgr: float, cpt50: float) -> PairResult:
    curve = PairCurve(np.zeros(2), np.zeros(2), 80.0, 50.0)
    return PairResult(bench, router, curve, apgr, cpt50, 70.0, 0.3)


def test_variants_table_lists_every_variant_and_checks_both_targets() -> None:
    rows = [
        _result("gsm8k", "ensemble: a", 0.63, 33.0),
        _result("mmlu", "ensemble: a", 0.61, 30.0),
        _result("gsm8k", "n-gram: length + difficulty", 0.63, 33.0),
        _result("mmlu", "n-gram: length + difficulty", 0.59, 34.0),
        _result("gsm8k", "hybrid (split chosen after seeing GSM8K)", 0.63, 34.0),
    ]
    table = variants_table(rows).splitlines()
    assert len(table) == 2 + 3
    assert table[2].split(" | ")[3] == "yes"
    assert table[3].split(" | ")[3] == "no"  # MMLU APGR short
    assert table[4].split(" | ")[2] == "-" and "NOT blind" in table[4]
    assert "0.630 / 33.0% / 70.0%" in table[2]
    assert note_of("embedding: difficulty only") == note_of("embedding: length + difficulty")
