"""The wide per-head route choice (engine.eval.wide_select) on small synthetic data."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.eval.bootstrap import apgr_interval
from engine.eval.data import MultiRow
from engine.eval.embed_compare import DEPLOYED, ViewScores
from engine.eval.embed_data import CorpusEmbeddings
from engine.eval.matrix_route import EMBED_CV, build_view, fit_matrix_route
from engine.eval.route_select import Corpus
from engine.eval.wide_deploy import WIDE_TRAIN
from engine.eval.wide_select import (
    DEFAULT,
    RB_WEAK,
    WIDE_APGR,
    EvalSet,
    Evidence,
    apply,
    candidates,
    choose,
    collect_evidence,
    eval_sets,
    intervals_table,
    run_wide,
    seven_pair,
    zscore,
)
from engine.router.route import RouteConfig
from tests.unit.test_eval_embed_compare import _perturb_held_out, synthetic

Arr = npt.NDArray[np.float64]
WORDS = ["apple", "river", "stone", "cloud", "paper", "engine", "violet", "marble"]


def _row(source: str, scores: dict[str, float]) -> MultiRow:
    return MultiRow("q", source, scores)


def test_seven_pair_is_fixed_on_non_pair_sources_only() -> None:
    rows = [
        _row("math", {"a": 0.9, "b": 0.5, "c": 0.1}),
        _row("arc_easy", {"a": 0.7, "b": 0.4, "c": 0.2}),
    ]
    # a pair benchmark's 7B copy would reverse the order if it counted
    rows += [_row("gsm8k", {"a": 0.0, "b": 0.0, "c": 1.0})] * 10
    assert seven_pair(rows) == ("a", "c")


def _set(name: str, heads: list[str], strong: Arr, weak: Arr, target: Arr | None = None) -> EvalSet:
    n = len(heads)
    return EvalSet(
        name,
        name.split(":")[1],
        "seven",
        np.arange(n, dtype=np.int64),
        tuple(heads),
        strong,
        weak,
        target if target is not None else 1.0 - strong,
    )


def _evidence(name: str, n: int, good: str, seed: int) -> Evidence:
    """``n`` general prompts; the candidate ``good`` ranks them by the strong model's gain, the
    others are noise."""
    rng = np.random.default_rng(seed)
    gain = rng.random(n)
    strong = (gain > 0.3).astype(np.float64)
    weak = np.zeros(n)
    cands = {c: rng.normal(size=n) for c in ("n-gram", "embedding", "mean")}
    cands[good] = gain
    return Evidence(_set(name, ["general"] * n, strong, weak), cands)


def test_choice_is_the_best_mean_over_sets_each_weighted_equally() -> None:
    big = _evidence("7b:cmmlu", 2000, "embedding", 0)
    small = [_evidence(f"7b:s{i}", 60, "n-gram", i + 1) for i in range(2)]
    c = choose("mmlu", "apgr", "general", [big, *small])
    assert [p[0] for p in c.per_set] == ["7b:cmmlu", "7b:s0", "7b:s1"]
    # count-weighted, the 2,000-prompt set would win for the embedding route; per set, n-gram
    assert c.route == "n-gram"
    assert c.means["n-gram"] > c.means["embedding"]


def test_sets_without_enough_prompts_or_a_strong_weak_gap_do_not_count() -> None:
    few = _evidence("7b:few", 49, "embedding", 1)
    ev = _evidence("7b:nogap", 200, "embedding", 2)
    no_gap = Evidence(replace(ev.set, weak=ev.set.strong.copy()), ev.cands)
    c = choose("gsm8k", "apgr", "general", [few, no_gap])
    assert c.route == DEFAULT and c.means == {} and c.per_set == ()
    # the other heads have no prompts at all: the default too
    assert choose("gsm8k", "apgr", "math", [_evidence("7b:x", 200, "n-gram", 3)]).route == DEFAULT
    # the Spearman metric needs no gap: it ranks against the difficulty target
    target = 0.5 * ev.cands["embedding"]  # a higher route score = harder
    sp = choose(
        "gsm8k", "spearman", "general", [Evidence(replace(no_gap.set, target=target), ev.cands)]
    )
    assert sp.route == "embedding" and sp.means["embedding"] > 0.99


def test_each_prompt_takes_its_heads_candidate() -> None:
    rng = np.random.default_rng(5)
    ngram, embed = rng.normal(size=6), rng.normal(size=6)
    heads = ["math", "general", "math", "code", "general", "general"]
    ev = [_evidence("7b:a", 100, "n-gram", 6)]
    choices = [
        replace(choose("gsm8k", "apgr", "general", ev), head="math", route="n-gram"),
        replace(choose("gsm8k", "apgr", "general", ev), head="general", route="embedding"),
    ]
    got = apply(heads, ngram, embed, choices)
    cands = candidates(ngram, embed)
    want = [
        cands[{"math": "n-gram", "general": "embedding"}.get(h, DEFAULT)][i]
        for i, h in enumerate(heads)
    ]
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(cands["n-gram"], zscore(ngram))
    np.testing.assert_allclose(cands["mean"], zscore(zscore(ngram) + zscore(embed)))


def test_eval_sets_leave_out_every_copy_of_the_held_out_benchmark() -> None:
    corpus, _ = synthetic(0, 150, RB_WEAK)
    heads7, headsb = ["general"] * len(corpus.seven), ["general"] * len(corpus.bench)
    pair_heads = {b: ["general"] * len(ps.rows) for b, ps in corpus.pair.items()}
    sets = eval_sets(corpus, "gsm8k", heads7, headsb, pair_heads)
    assert sorted(s.name for s in sets) == [
        "7b:arc_easy",
        "7b:math",
        "7b:mbpp",
        "7b:mmlu",
        "pair:mmlu",
        "rb:arc_challenge",
    ]
    rb = next(s for s in sets if s.name == "rb:arc_challenge")
    want = [r.quality[RB_WEAK] for r in corpus.bench]
    np.testing.assert_array_equal(rb.weak, want)  # GPT-4 vs Mixtral-chat, not the pair's name
    seen: list[frozenset[str]] = []

    def score(kind: str, skip: frozenset[str], s: EvalSet) -> Arr:
        seen.append(skip)
        assert skip == {"gsm8k", s.source}
        return np.arange(len(s.idx), dtype=np.float64)

    ev = collect_evidence(corpus, "gsm8k", sets, score, ("n-gram", EMBED_CV), progress=False)
    assert len(ev) == len(sets) and len(seen) == 2 * len(sets)


def _run(
    corpus: Corpus, emb: CorpusEmbeddings, deployed: bool = False
) -> tuple[dict[str, dict[str, Arr]], list[tuple[Any, ...]]]:
    """run_wide with gsm8k held out, on the plain embedding view (the CV view's head fits would
    make the test slow; its heads are fitted by the same ``fit_matrix_route``)."""
    kinds = ("n-gram", "embedding")
    views = {k: build_view(k, corpus, emb) for k in kinds}
    n = len(corpus.pair["gsm8k"].rows)
    held = {
        f"{k}: length + difficulty": np.linspace(0, 1, n) * (i + 1) for i, k in enumerate(kinds)
    }
    cfg = RouteConfig(1.0, 0, 0.0)
    outer = {
        "gsm8k": {
            k: ViewScores(
                held,
                cfg,
                {},
                fitted=fit_matrix_route(v, corpus.seven, corpus.bench, ["gsm8k"], cfg.c_general),
            )
            for k, v in views.items()
        }
    }
    scores, choices = run_wide(corpus, views, outer, progress=False, kinds=kinds, deployed=deployed)
    return scores, [(c.target, c.metric, c.head, c.route, c.means, c.per_set) for c in choices]


def test_wide_choice_uses_no_row_of_the_held_out_benchmark() -> None:
    corpus, emb = synthetic(1, 150, RB_WEAK)
    scores, choices = _run(corpus, emb)
    scores2, choices2 = _run(*_perturb_held_out(corpus, emb, "gsm8k"))
    assert choices == choices2
    np.testing.assert_array_equal(scores["gsm8k"][WIDE_APGR], scores2["gsm8k"][WIDE_APGR])
    np.testing.assert_array_equal(scores["gsm8k"][WIDE_TRAIN], scores2["gsm8k"][WIDE_TRAIN])
    # the signal lives in the embedding: where there is evidence (general prompts), it is not
    # the n-gram route
    general = next(c for c in choices if c[1] == "apgr" and c[2] == "general")
    assert general[3] in ("embedding", "mean") and len(general[5]) >= 4


def test_deployed_choice_validates_on_every_source() -> None:
    corpus, emb = synthetic(2, 150, RB_WEAK)
    _, choices = _run(corpus, emb, deployed=True)
    assert {c[0] for c in choices} == {"gsm8k", DEPLOYED}
    used = {name for c in choices if c[0] == DEPLOYED for name, _, _ in c[5]}
    # both pair benchmarks (gsm8k only as math prompts), their 7B copies and RouterBench
    assert {"pair:gsm8k", "pair:mmlu", "7b:gsm8k", "7b:mmlu", "rb:arc_challenge"} <= used


def test_apgr_interval_brackets_the_figure() -> None:
    rng = np.random.default_rng(7)
    gain = rng.random(400)
    strong, weak = np.ones(400), (gain < 0.6).astype(np.float64)
    v, lo, hi = apgr_interval(gain + rng.normal(size=400) * 0.3, strong, weak, n=200)
    assert lo < v < hi and hi - lo < 0.3
    assert "| mmlu | x | 0.605 | [0.590, 0.620] | 0.603 |" in intervals_table(
        [("mmlu", "x", 0.605, 0.59, 0.62)]
    )
