"""The slow path's per-head routes (n-gram / embedding / mean) with training constants, on
synthetic heads and constants; and the trainer's scores equal the runtime's."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from engine.embed.router import PAIR_MODELS, SlowRouter
from engine.eval.wide_deploy import Scale, fit_scale, scaled_candidates
from engine.features import Features
from engine.router.learned import LearnedRouter
from engine.router.route import RouteConfig, RouteStats, route_score
from engine.signals.base import RequestView
from engine.train.train_embed_router import Rows, slow_scores
from modelroute.domain import Message, Role, TaskType

HEADS = ["math", "code", "general"]
S, W = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"  # the pair: slow p
LINK = {S: [1.0, -0.5], W: [0.4, -0.9]}
ROUTES = {"math": "ngram", "code": "embedding", "general": "mean"}
SCALE = {"ngram": [0.3, 2.0], "embedding": [-0.2, 0.5], "mean": [0.1, 1.5]}
DIM = 4


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class FakeHead:
    """Three difficulty heads: a fixed function of the dense input (from ``start`` on)."""

    labels = HEADS

    def __init__(self, start: int, w: Sequence[float]) -> None:
        self._start, self._w = start, np.asarray(w)

    def predict(self, f: Features) -> npt.NDArray[np.float32]:
        x = float(np.sum(f.dense[self._start :]))
        return np.array([_sig(w * x) for w in self._w], dtype=np.float32)


class FakeEmbedder:
    """A deterministic 4-d vector per text."""

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.array(
            [[len(t) % 7 / 7.0, t.count("e") / 10.0, -0.1, t.count(" ") / 20.0] for t in texts],
            dtype=np.float32,
        )


def _meta(**over: object) -> dict[str, object]:
    meta: dict[str, object] = {
        "version": 2,
        "routes": ROUTES,
        "scale": SCALE,
        "embedding_scale": 2.0,
        "route": {"c_general": 1.0, "length_feature": 0, "length_weight": 0.5},
        "length": [0.4, 0.1],
        "difficulty": {"math": [0.5, 0.2], "code": [0.6, 0.1], "general": [0.45, 0.15]},
        "link": LINK,
    }
    meta.update(over)
    return meta


def _fast() -> LearnedRouter:
    meta = {
        "route": {"c_general": 1.0, "length_feature": 0, "length_weight": 1.0},
        "length": [0.5, 0.2],
        "difficulty": {"math": [0.4, 0.3], "code": [0.5, 0.2], "general": [0.55, 0.25]},
        "link": {S: [1.5, -0.4], W: [0.9, -0.7]},
    }
    empty = FakeHead(0, [])
    empty.labels = []
    return LearnedRouter(FakeHead(0, [0.3, -0.2, 0.5]), empty, meta)


def _slow(**over: object) -> SlowRouter:
    return SlowRouter(_fast(), FakeHead(0, [0.1, 0.2, -0.15]), _meta(**over), FakeEmbedder())


def req(text: str) -> RequestView:
    return RequestView((Message(Role.USER, text),))


TEXTS = {
    TaskType.MATH: "What is seventeen times three, minus eight?",
    TaskType.CODE: "Write a function that merges two sorted lists in place.",
    TaskType.OPEN_QA: "Explain why the sky looks blue at noon and red at sunset.",
}


def _by_hand(slow: SlowRouter, text: str, task: TaskType, scale: dict[str, list[float]]) -> float:
    """The slow head's score computed from the definitions, with the given constants."""
    r = req(text)
    f = r.features
    vec = FakeEmbedder().embed([text])[0]
    dense = np.concatenate([f.dense, vec * 2.0]).astype(np.float32)
    head = {TaskType.CODE: "code", TaskType.OPEN_QA: "general"}[task]
    d = float(
        FakeHead(0, [0.1, 0.2, -0.15]).predict(Features(f.indices, f.values, dense))[
            HEADS.index(head)
        ]
    )
    cfg = RouteConfig(1.0, 0, 0.5)
    st = RouteStats({"math": (0.5, 0.2), "code": (0.6, 0.1), "general": (0.45, 0.15)}, (0.4, 0.1))
    zc = (route_score(d, head, float(f.dense[0]), cfg, st) - scale["embedding"][0]) / scale[
        "embedding"
    ][1]
    if head == "code":
        return zc
    fast = slow.fast
    a = fast.route_score(r, fast.difficulty(r, task), task)
    za = (a - scale["ngram"][0]) / scale["ngram"][1]
    return (za + zc - scale["mean"][0]) / scale["mean"][1]


def test_each_head_takes_its_route() -> None:
    slow = _slow()
    assert slow.fast_heads == frozenset({"math"})
    tasks = list(TEXTS)
    out = slow.score_batch([req(TEXTS[t]) for t in tasks], tasks)
    # math: the fast router's output, untouched
    assert out[0] == slow.fast.score(req(TEXTS[TaskType.MATH]), TaskType.MATH)
    for o, t in zip(out[1:], tasks[1:], strict=True):
        s = _by_hand(slow, TEXTS[t], t, SCALE)
        for m, (a, b) in LINK.items():
            assert o.quality[m] == pytest.approx(_sig(a + b * s), abs=1e-9)
    # the mean route is not the embedding route alone: the two differ on the general prompt
    code_like = _slow(routes={**ROUTES, "general": "embedding"})
    g = code_like.score_batch([req(TEXTS[TaskType.OPEN_QA])], [TaskType.OPEN_QA])[0]
    assert g.quality[S] != pytest.approx(out[2].quality[S], abs=1e-6)


def test_the_mean_route_uses_the_training_constants() -> None:
    other = {"ngram": [-1.0, 0.7], "embedding": [0.5, 3.0], "mean": [0.4, 0.6]}
    slow = _slow(scale=other)
    t = TaskType.OPEN_QA
    o = slow.score_batch([req(TEXTS[t])], [t])[0]
    s = _by_hand(slow, TEXTS[t], t, other)
    assert o.quality[W] == pytest.approx(_sig(0.4 - 0.9 * s), abs=1e-9)
    base = _slow().score_batch([req(TEXTS[t])], [t])[0]
    assert o.quality[W] != pytest.approx(base.quality[W], abs=1e-6)


def test_a_requests_score_does_not_depend_on_the_batch() -> None:
    slow = _slow()
    t = TaskType.OPEN_QA
    alone = slow.score_batch([req(TEXTS[t])], [t])[0]
    others = ["short", "a much longer general question about many things " * 5, "eeeeee e e"]
    batch = slow.score_batch(
        [req(x) for x in others] + [req(TEXTS[t])] + [req(TEXTS[TaskType.CODE])],
        [t, t, t, t, TaskType.CODE],
    )
    assert batch[3] == alone


def test_a_version_one_file_keeps_its_meaning() -> None:
    meta = _meta(fast_heads=["math"])
    del meta["routes"], meta["scale"]
    slow = SlowRouter(_fast(), FakeHead(0, [0.1, 0.2, -0.15]), meta, FakeEmbedder())
    assert slow.routes == {"math": "ngram", "code": "embedding", "general": "embedding"}
    t = TaskType.CODE
    o = slow.score_batch([req(TEXTS[t])], [t])[0]
    raw = {"ngram": [0.0, 1.0], "embedding": [0.0, 1.0], "mean": [0.0, 1.0]}
    s = _by_hand(slow, TEXTS[t], t, raw)  # the raw embedding route score
    assert o.quality[S] == pytest.approx(_sig(1.0 - 0.5 * s), abs=1e-9)


def test_an_unknown_route_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown route"):
        _slow(routes={**ROUTES, "code": "fancy"})


def test_training_constants_standardize_the_training_rows() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(2.0, 3.0, size=500)
    c = 0.5 * a + rng.normal(-1.0, 0.2, size=500)
    sc = fit_scale(a, c)
    cands = scaled_candidates(a, c, sc)
    for k in ("n-gram", "embedding", "mean"):
        assert cands[k].mean() == pytest.approx(0.0, abs=1e-9)
        assert cands[k].std() == pytest.approx(1.0, abs=1e-9)
    # a new prompt is scored with those constants alone, whatever else is scored with it
    one = scaled_candidates(a[:1] + 5.0, c[:1], sc)
    many = scaled_candidates(np.concatenate([a[:1] + 5.0, a]), np.concatenate([c[:1], c]), sc)
    for k in one:
        assert one[k][0] == many[k][0]


def test_the_trainers_scores_are_the_runtimes() -> None:
    slow = _slow()
    scale = Scale(tuple(SCALE["ngram"]), tuple(SCALE["embedding"]), tuple(SCALE["mean"]))  # type: ignore[arg-type]
    rng = np.random.default_rng(4)
    heads = ["code", "general", "general", "code"]
    a, c = rng.normal(size=4), rng.normal(size=4)
    got = slow_scores(Rows(heads, a, c), ROUTES, scale)
    want = [slow.combined(h, float(ci), float(ai)) for h, ai, ci in zip(heads, a, c, strict=True)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_only_the_pair_models_on_the_pair_footing_take_the_slow_score() -> None:
    """The slow file's links for the multi-model rows are the earlier route-only form: a model
    other than the pair's two ("L") keeps the fast router's p (its level link); so does a pair
    model whose link in the decision's fast router is not its pair link (GPT-4-1106 by
    default). A decision of the pair alone (``pair=True``) gives both the slow p."""
    strong, weak = S, W
    assert {S, W} == PAIR_MODELS
    base = {
        "route": {"c_general": 1.0, "length_feature": 0, "length_weight": 1.0},
        "length": [0.5, 0.2],
        "difficulty": {"math": [0.4, 0.3], "code": [0.5, 0.2], "general": [0.55, 0.25]},
    }
    pair_link = {strong: [1.5, -0.4, 0.0], weak: [0.9, -0.7, 0.0], "L": [0.2, 0.1, -1.5]}
    default_link = {**pair_link, strong: [1.2, 0.1, -0.5]}
    empty = FakeHead(0, [])
    empty.labels = []
    fast = LearnedRouter(FakeHead(0, [0.3, -0.2, 0.5]), empty, {**base, "link": default_link})
    fast_pair = LearnedRouter(FakeHead(0, [0.3, -0.2, 0.5]), empty, {**base, "link": pair_link})
    link = {strong: [1.0, -0.5], weak: [0.4, -0.9], "L": [3.0, 2.0]}
    slow = SlowRouter(
        fast, FakeHead(0, [0.1, 0.2, -0.15]), _meta(link=link), FakeEmbedder(), fast_pair
    )
    r, task = req(TEXTS[TaskType.CODE]), TaskType.CODE
    x = _by_hand(slow, TEXTS[TaskType.CODE], task, SCALE)
    for pair, router in ((False, fast), (True, fast_pair)):
        got = slow.score_batch([r], [task], pair)[0].quality
        want_fast = router.score(r, task).quality
        assert got["L"] == want_fast["L"]
        assert got[weak] == pytest.approx(_sig(0.4 - 0.9 * x)) != want_fast[weak]
        if pair:
            assert got[strong] == pytest.approx(_sig(1.0 - 0.5 * x)) != want_fast[strong]
        else:
            assert got[strong] == want_fast[strong]
    # without a pair router (a router.json older than its pair_link), a pair model on a
    # route-only link takes the slow p and one with a level term keeps its fast p, whatever
    # the decision
    alone = SlowRouter(fast, FakeHead(0, [0.1, 0.2, -0.15]), _meta(link=link), FakeEmbedder())
    want_fast = fast.score(r, task).quality
    for pair in (False, True):
        got = alone.score_batch([r], [task], pair)[0].quality
        assert got[strong] == want_fast[strong]
        assert got[weak] == pytest.approx(_sig(0.4 - 0.9 * x)) != want_fast[weak]
