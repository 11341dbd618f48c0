"""The n-gram vs embedding comparison pipeline on small synthetic corpora."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from engine.eval.bootstrap import paired_bootstrap
from engine.eval.data import STRONG, WEAK, MultiRow, PairRow
from engine.eval.embed_compare import (
    DEPLOYED,
    EMBED_ROUTE,
    ENSEMBLE,
    HYBRID,
    HYBRID_NESTED,
    MIN_HEAD_PROMPTS,
    Evidence,
    HeadChoice,
    build_view,
    choose_head,
    compare,
    fit_matrix_head,
    hybrid_scores,
    part_matrix,
)
from engine.eval.embed_data import CorpusEmbeddings
from engine.eval.route_select import Corpus, PairSet
from engine.features import featurize
from engine.train.train_router import DIFF_FOLD, fit_head
from modelroute.domain import TaskType

F32 = npt.NDArray[np.float32]
WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "paper",
    "engine",
    "violet",
    "marble",
    "orbit",
    "quiet",
]


def prompts(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 9)))) for _ in range(n)]


def test_matrix_head_equals_the_shipped_head_fit_on_ngram_features() -> None:
    rng = np.random.default_rng(0)
    texts = prompts(rng, 80)
    feats = [featurize(t) for t in texts]
    y = rng.random(80)
    groups = [("a", "b")[i % 2] for i in range(80)]
    want = fit_head(feats, y, DIFF_FOLD, "h", groups=groups).predict(feats)[:, 0]
    part = part_matrix("n-gram", feats, np.zeros((80, 4), dtype=np.float32))
    got = fit_matrix_head(part.x, y, groups).predict(part.x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_unknown_feature_set_is_rejected() -> None:
    feats = [featurize("a b")]
    with pytest.raises(ValueError, match="unknown feature set"):
        part_matrix("bag of words", feats, np.zeros((1, 4), dtype=np.float32))


def synthetic(seed: int = 0, n: int = 300, weak: str = WEAK) -> tuple[Corpus, CorpusEmbeddings]:
    """Difficulty lives in embedding component 0 only; the text carries no signal. ``n`` prompts
    per pair benchmark, 2n 7B rows, 0.4n RouterBench rows (GPT-4 and ``weak``)."""
    rng = np.random.default_rng(seed)

    def emb(diff: npt.NDArray[np.float64]) -> F32:
        v = rng.normal(size=(len(diff), 8)) * 0.1
        v[:, 0] = diff
        out: F32 = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        return out

    pair, pair_emb = {}, {}
    for name, task in (("gsm8k", TaskType.MATH), ("mmlu", TaskType.OPEN_QA)):
        d = rng.random(n)
        texts = prompts(rng, n)
        rows = [PairRow(t, name, True, bool(x < 0.5)) for t, x in zip(texts, d, strict=True)]
        pair[name] = PairSet(rows, [featurize(t) for t in texts], [task] * n)
        pair_emb[name] = emb(d)
    seven: list[MultiRow] = []
    d7 = rng.random(2 * n)
    for i, (t, x) in enumerate(zip(prompts(rng, 2 * n), d7, strict=True)):
        src = ("math", "gsm8k", "mmlu", "arc_easy", "mbpp")[i % 5]
        seven.append(MultiRow(t, src, {f"m{k}": float(rng.random() > x) for k in range(7)}))
    db = rng.random(2 * n // 5)
    bench = [
        MultiRow(t, "arc_challenge", {STRONG: 1.0, weak: float(x < 0.5)})
        for t, x in zip(prompts(rng, 2 * n // 5), db, strict=True)
    ]
    corpus = Corpus(
        pair,
        seven,
        [featurize(r.prompt) for r in seven],
        bench,
        [featurize(r.prompt) for r in bench],
    )
    return corpus, CorpusEmbeddings(pair_emb, emb(d7), emb(db))


def test_embedding_router_finds_a_signal_that_only_the_embedding_carries() -> None:
    corpus, emb = synthetic()
    cmp = compare(corpus, emb, kinds=("n-gram", "embedding"), progress=False, bootstrap=200)
    results, chosen, ds = cmp.results, cmp.knobs, cmp.deltas
    by = {(r.bench, r.router): r for r in results}
    for bench in ("gsm8k", "mmlu"):
        good = by[(bench, "embedding: difficulty only")]
        blind = by[(bench, "n-gram: difficulty only")]
        # weak right iff difficulty < 0.5, strong always: a perfect ranking reaches APGR 0.75,
        # CPT(50%) 25%; a blind one about 0.5 and 50%.
        assert good.apgr > 0.65
        assert good.cpt50 < 35.0
        assert blind.apgr < 0.56
        assert blind.cpt50 > 45.0
        assert (bench, ENSEMBLE) in by
    # gsm8k prompts are all math: the hybrid is the n-gram route there, the embedding one on mmlu
    assert by[("gsm8k", HYBRID)].apgr == by[("gsm8k", "n-gram: length + difficulty")].apgr
    assert by[("mmlu", HYBRID)].apgr == by[("mmlu", "embedding: length + difficulty")].apgr
    emb_delta = {d.bench: d for d in ds if d.router == "embedding: length + difficulty"}
    for d in emb_delta.values():  # the embedding router is clearly better: interval above 0
        assert d.low > 0.0 and d.low <= d.delta <= d.high
    assert set(chosen) == {f"{b} / {k}" for b in ("gsm8k", "mmlu") for k in ("n-gram", "embedding")}


def test_views_keep_rows_aligned_with_the_corpus() -> None:
    corpus, emb = synthetic(1)
    view = build_view("embedding + n-gram", corpus, emb)
    assert view.seven.x.shape[0] == len(corpus.seven)
    assert view.bench.x.shape[0] == len(corpus.bench)
    assert view.pair["mmlu"].x.shape == (300, DIFF_FOLD + 11 + 8)
    np.testing.assert_allclose(
        view.pair["mmlu"].dense[:, 0], [f.dense[0] for f in corpus.pair["mmlu"].feats]
    )


def test_paired_bootstrap_of_a_router_against_itself_is_zero() -> None:
    rng = np.random.default_rng(2)
    s = rng.random(500)
    strong = (rng.random(500) < 0.8).astype(np.float64)
    weak = (rng.random(500) < 0.5).astype(np.float64)
    assert paired_bootstrap(s, s, strong, weak, n=50) == (0.0, 0.0, 0.0)


def _perturb_held_out(
    corpus: Corpus, emb: CorpusEmbeddings, held: str
) -> tuple[Corpus, CorpusEmbeddings]:
    """Every outcome and embedding of ``held`` (its pair rows and its copy in the 7B rows)
    replaced by noise; everything else untouched."""
    rng = np.random.default_rng(99)
    ps = corpus.pair[held]
    rows = [
        replace(r, strong=bool(rng.random() < 0.5), weak=bool(rng.random() < 0.5)) for r in ps.rows
    ]
    seven = [
        replace(r, quality={m: float(rng.random() < 0.5) for m in r.quality})
        if r.source == held
        else r
        for r in corpus.seven
    ]
    pair = {**corpus.pair, held: PairSet(rows, ps.feats, ps.tasks)}
    held_emb = rng.normal(size=emb.pair[held].shape).astype(np.float32)
    seven_emb = emb.seven.copy()
    mask = np.array([r.source == held for r in corpus.seven])
    seven_emb[mask] = rng.normal(size=(int(mask.sum()), seven_emb.shape[1]))
    return (
        replace(corpus, pair=pair, seven=seven),
        CorpusEmbeddings({**emb.pair, held: held_emb}, seven_emb, emb.bench),
    )


def _key(c: HeadChoice) -> tuple[object, ...]:
    return (c.target, c.head, c.route, c.evidence, c.n)


def test_nested_choice_uses_no_row_of_the_held_out_benchmark() -> None:
    corpus, emb = synthetic(3)
    kinds = ("n-gram", "embedding")
    base = compare(corpus, emb, kinds=kinds, progress=False, bootstrap=0)
    noisy = compare(
        *_perturb_held_out(corpus, emb, "gsm8k"), kinds=kinds, progress=False, bootstrap=0
    )
    mine = [c for c in base.choices if c.target == "gsm8k"]
    again = [c for c in noisy.choices if c.target == "gsm8k"]
    assert [_key(c) for c in mine] == [_key(c) for c in again]
    np.testing.assert_array_equal(
        [(c.ngram_apgr, c.embed_apgr) for c in mine], [(c.ngram_apgr, c.embed_apgr) for c in again]
    )
    # the perturbation did reach the data: the choice FOR mmlu is decided on gsm8k's math prompts
    other = {c.head: c for c in base.choices if c.target == "mmlu"}
    other_noisy = {c.head: c for c in noisy.choices if c.target == "mmlu"}
    assert other["math"].evidence == ("gsm8k",)
    assert other["math"].ngram_apgr != other_noisy["math"].ngram_apgr
    # mmlu (all general) has no math or code prompts: embedding by rule; general decided on it
    by_head = {c.head: c for c in mine}
    assert by_head["math"].route == by_head["code"].route == "embedding"
    assert by_head["math"].evidence == by_head["code"].evidence == ()
    assert by_head["general"].evidence == ("mmlu",) and by_head["general"].n == 300
    # the difficulty signal lives in the embedding only: it wins where there is evidence, and
    # the nested hybrid then is the embedding route on both benchmarks
    assert by_head["general"].route == other["math"].route == "embedding"
    by = {(r.bench, r.router): r for r in base.results}
    for bench in ("gsm8k", "mmlu"):
        assert by[(bench, HYBRID_NESTED)].apgr == by[(bench, EMBED_ROUTE)].apgr
    assert {c.target for c in base.choices} == {"gsm8k", "mmlu", DEPLOYED}


def _evidence(n_code: int, seed: int = 4) -> Evidence:
    """``n_code`` code prompts that the n-gram route ranks perfectly and the embedding route at
    random, among 200 general prompts."""
    rng = np.random.default_rng(seed)
    n = n_code + 200
    d = rng.random(n)
    return Evidence(
        "x",
        ["code"] * n_code + ["general"] * 200,
        np.ones(n),
        (d < 0.5).astype(np.float64),
        d,
        rng.random(n),
    )


def test_head_with_too_few_prompts_gets_the_embedding_route() -> None:
    few = choose_head("h", "code", [_evidence(MIN_HEAD_PROMPTS - 1)])
    assert (few.route, few.evidence, few.n) == ("embedding", (), MIN_HEAD_PROMPTS - 1)
    assert np.isnan(few.ngram_apgr)
    enough = choose_head("h", "code", [_evidence(MIN_HEAD_PROMPTS)])
    assert (enough.route, enough.evidence, enough.n) == ("n-gram", ("x",), MIN_HEAD_PROMPTS)
    assert enough.ngram_apgr > enough.embed_apgr
    # evidence spread over benchmarks counts only where one has enough prompts of the head
    spread = choose_head("h", "code", [_evidence(30, 5), _evidence(30, 6)])
    assert (spread.route, spread.n) == ("embedding", 60)


def test_head_where_the_strong_model_is_no_better_gets_the_embedding_route() -> None:
    ev = _evidence(100)
    flipped = replace(ev, strong=np.zeros_like(ev.strong))  # weak right on half, strong never
    got = choose_head("h", "code", [flipped])
    assert (got.route, got.evidence) == ("embedding", ())
    assert got.skipped == "x: 100, strong no better than weak"
    # next to a benchmark that does qualify, only that one decides
    both = choose_head("h", "code", [flipped, replace(ev, bench="y")])
    assert (both.route, both.evidence, both.n) == ("n-gram", ("y",), 100)


def test_hybrid_takes_each_prompt_from_its_heads_route() -> None:
    ng, em = np.array([1.0, 2.0, 3.0]), np.array([-1.0, -2.0, -3.0])
    cs = [HeadChoice("h", "math", "n-gram", ("x",), 60, 0.6, 0.5)]
    got = hybrid_scores(["math", "general", "math"], ng, em, cs)
    np.testing.assert_array_equal(got, [1.0, -2.0, 3.0])
