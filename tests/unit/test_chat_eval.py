"""``modelroute eval``'s open-chat section on a small synthetic corpus and chat set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.eval.chat import ChatSet
from engine.eval.chat_eval import (
    BENCH,
    CHAT_ROUTER,
    PER_SET,
    ROUTERS,
    SHARED,
    chat_section,
    evaluate_chat,
)
from engine.eval.data import MultiRow
from engine.eval.route_select import Corpus
from engine.features import featurize
from engine.router.route import RouteConfig
from modelroute.domain import TaskType

SETS = ("helpful_base", "koala", "oasst", "selfinstruct", "vicuna")
WORDS = ("owls", "tides", "bread", "volcanoes", "chess", "tea", "rivers", "glass", "comets")


def _corpus() -> Corpus:
    """Difficulty rows of one general source: longer questions are failed more often."""
    rows = []
    for i in range(80):
        text = f"Which statement about {WORDS[i % 9]} is true?" + " Consider each case." * (i % 6)
        fail = (i % 6) / 6.0
        rows.append(MultiRow(text, "arc_easy", {"m1": 1.0 - fail, "m2": 0.5 - fail / 2}))
    return Corpus({}, rows, [featurize(r.prompt) for r in rows], [], [])


def _chat_set() -> ChatSet:
    prompts = [f"Tell me about {WORDS[i % 9]}." + " Be thorough." * (i % 7) for i in range(150)]
    feats = [featurize(p) for p in prompts]
    z = np.array([f.dense[0] for f in feats])
    z = (z - z.mean()) / z.std()
    weak = 1.0 / (1.0 + np.exp(-(-1.2 + 1.2 * z)))  # longer: the weak model is preferred more
    sets = [SETS[i % 5] for i in range(150)]
    return ChatSet(prompts, sets, weak, feats, [TaskType.OPEN_QA] * 150)


def test_the_chat_section_scores_every_router_and_nests_the_knobs() -> None:
    cs = _chat_set()
    e = evaluate_chat(Path("unused"), _corpus(), RouteConfig(1.0, 0, 0.5), cs)
    assert [r.router for r in e.results] == list(ROUTERS) and {r.bench for r in e.results} == {
        BENCH
    }
    by = {r.router: r.apgr for r in e.results}
    assert by[CHAT_ROUTER] > by[SHARED]  # the shared knobs add length, which these labels punish
    assert by[CHAT_ROUTER] > by["random"] and by["length only, inverted"] > by["length only"]
    assert sorted(e.chosen) == sorted(SETS) and sorted(e.per_set) == sorted(SETS)
    assert all(set(v) == set(PER_SET) for v in e.per_set.values())
    apgr, lo, hi = e.interval
    assert apgr == by[CHAT_ROUTER] and lo <= apgr <= hi
    d, dlo, dhi = e.delta
    assert d == by[CHAT_ROUTER] - by[SHARED] and dlo <= d <= dhi
    text = chat_section(e)
    assert f"| {BENCH} | {CHAT_ROUTER} |" in text and "| vicuna |" in text
