"""The combined route score: formula, knobs round trip, and the shipped router's use of them."""

from __future__ import annotations

import json
import math

import pytest

from engine.router.learned import MODELS_DIR, LearnedRouter
from engine.router.route import (
    FamilyKnobs,
    RouteConfig,
    RouteStats,
    as_link,
    difficulty_level,
    route_score,
)
from engine.signals.base import RequestView
from modelroute.domain import Message, Role, TaskType


def test_route_score_standardizes_difficulty_and_weights_length() -> None:
    stats = RouteStats({"math": (0.4, 0.1), "general": (0.5, 0.2)}, (5.0, 2.0))
    cfg = RouteConfig(1.0, 0, 0.5)
    assert route_score(0.6, "math", 7.0, cfg, stats) == pytest.approx(2.0 + 0.5 * 1.0)
    assert route_score(0.5, "general", 5.0, cfg, stats) == pytest.approx(0.0)
    no_len = RouteConfig(1.0, 0, 0.0)
    assert route_score(0.3, "math", 100.0, no_len, stats) == pytest.approx(-1.0)


def test_route_config_round_trips_through_json() -> None:
    cfg = RouteConfig(10.0, 1, 0.25)
    assert RouteConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


def test_shipped_router_uses_its_stored_knobs() -> None:
    meta = json.loads((MODELS_DIR / "router.json").read_text(encoding="utf-8"))
    cfg = RouteConfig.from_json(meta["route"])
    router = LearnedRouter.load()
    short = RequestView((Message(Role.USER, "Add 2 and 3."),))
    long = RequestView((Message(Role.USER, "Add 2 and 3. " * 40),))
    d = 0.5
    gap = router.route_score(long, d, TaskType.MATH) - router.route_score(short, d, TaskType.MATH)
    k = cfg.length_feature
    lm, ls = meta["length"]
    expected = cfg.length_weight * float(long.features.dense[k] - short.features.dense[k]) / ls
    assert gap == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert lm > 0


def test_linked_models_follow_their_curve_and_harder_prompts_widen_the_pair_gap() -> None:
    """By default GPT-4-1106 takes its level link (RouterBench footing) and Mixtral-Instruct its
    pair link; with ``pair_links`` both take their route-only links on the pair benchmarks."""
    meta = json.loads((MODELS_DIR / "router.json").read_text(encoding="utf-8"))
    link, pair = meta["link"], meta["pair_link"]
    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert set(pair) == {strong, weak} and link[weak] == pair[weak] and link[strong] != pair[strong]
    req = RequestView((Message(Role.USER, "Name a prime number."),))
    for pair_links, table in ((False, link), (True, {**link, **pair})):
        router = LearnedRouter.load(pair_links=pair_links)
        assert {strong, weak} <= router.known_models
        out = router.score(req, TaskType.MATH)
        r = router.route_score(req, out.difficulty, TaskType.MATH)
        lv = difficulty_level(out.difficulty)
        for m in (strong, weak):
            a, b, c = table[m]
            assert router.link(m) == tuple(table[m])
            assert out.quality[m] == pytest.approx(1.0 / (1.0 + math.exp(-(a + b * r + c * lv))))
    assert link[strong][2] < 0.0  # on the RouterBench footing, like the other models there
    # on the pair footing: route only, and the weak model loses more as the route score rises
    assert pair[strong][2] == pair[weak][2] == 0.0
    assert pair[weak][1] < pair[strong][1] < 0.0


def test_multi_model_links_read_the_difficulty_level() -> None:
    """The RouterBench and 7B models' links carry a level term; the router applies it."""
    link = json.loads((MODELS_DIR / "router.json").read_text(encoding="utf-8"))["link"]
    router = LearnedRouter.load()
    name = "zero-one-ai/Yi-34B-Chat"
    a, b, c = link[name]
    assert c < 0.0  # a harder prompt on the 7B models' scale lowers its success
    for text, task in (("Name a prime number.", TaskType.MATH),
                       ("Write a function that reverses a list. " * 20, TaskType.CODE),
                       ("What is the capital of France?", TaskType.OPEN_QA)):  # fmt: skip
        req = RequestView((Message(Role.USER, text),))
        out = router.score(req, task)
        r = router.route_score(req, out.difficulty, task)
        want = 1.0 / (1.0 + math.exp(-(a + b * r + c * difficulty_level(out.difficulty))))
        assert out.quality[name] == pytest.approx(want, rel=1e-9)


def test_difficulty_level_is_the_clipped_log_odds() -> None:
    assert difficulty_level(0.5) == 0.0
    assert difficulty_level(0.8) == pytest.approx(math.log(4.0))
    assert (
        difficulty_level(0.0)
        == difficulty_level(1e-9)
        == pytest.approx(math.log(1e-4 / (1 - 1e-4)))
    )
    assert difficulty_level(1.0) == pytest.approx(-difficulty_level(0.0))


def test_a_link_is_three_numbers_or_two_from_an_older_file() -> None:
    assert as_link([0.5, -1.0, 2.0]) == (0.5, -1.0, 2.0)
    assert as_link([0.5, -1.0]) == (0.5, -1.0, 0.0)
    with pytest.raises(ValueError, match=r"\[a, b\] or \[a, b, c\]"):
        as_link([0.5])


def test_a_route_family_has_its_own_knobs_and_the_others_keep_the_shared_ones() -> None:
    stats = RouteStats({"general": (0.5, 0.2)}, (5.0, 2.0))
    chat = FamilyKnobs(0.6, -0.8, 0.25, -1.0, 1.5)
    cfg = RouteConfig(1.0, 0, 0.5).with_family("chat", chat)
    assert cfg.knobs("chat") == chat
    assert cfg.knobs("general") == cfg.knobs(None) == FamilyKnobs(1.0, 0.5)
    # difficulty 0.7 -> z = 1; length 9 -> z = 2 (clipped to 1.5 for chat), 1 -> z = -2 (to -1)
    assert route_score(0.7, "general", 9.0, cfg, stats) == pytest.approx(1.0 + 0.5 * 2.0)
    assert route_score(0.7, "general", 9.0, cfg, stats, "chat") == pytest.approx(0.6 - 1.2 + 0.25)
    assert route_score(0.7, "general", 1.0, cfg, stats, "chat") == pytest.approx(0.6 + 0.8 + 0.25)
    assert route_score(0.7, "general", 6.0, cfg, stats, "chat") == pytest.approx(0.6 - 0.4 + 0.25)
    again = cfg.with_family("chat", FamilyKnobs())
    assert again.families == (("chat", FamilyKnobs()),) and again.shared().families == ()
    assert RouteConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    assert RouteConfig.from_json(json.loads(json.dumps(again.to_json()))) == again
    assert "families" not in RouteConfig(1.0, 0, 0.5).to_json()
    with pytest.raises(ValueError, match="numbers"):
        FamilyKnobs.from_json({"length_weight": "x"})


def test_tasks_judged_by_preference_form_the_chat_family() -> None:
    from engine.router.prior import CHAT, family_for, head_for

    assert family_for(TaskType.OPEN_QA) == family_for(TaskType.CREATIVE_WRITING) == CHAT
    assert family_for(TaskType.REASONING) == "general"
    assert family_for(TaskType.MATH) == "math" and family_for(TaskType.CODE) == "code"
    assert head_for(TaskType.OPEN_QA) == "general"  # the chat family reads the general head


def test_the_shipped_chat_family_weighs_length_against_the_strong_model() -> None:
    """The shipped knobs (``modelroute train --only chat_route``): on chat tasks a longer prompt
    lowers the route score, on the general family's tasks it raises it."""
    meta = json.loads((MODELS_DIR / "router.json").read_text(encoding="utf-8"))
    cfg = RouteConfig.from_json(meta["route"])
    k = cfg.knobs("chat")
    assert k.length_weight < 0.0 < k.difficulty_weight and k.length_low < 0.0 < k.length_high
    router = LearnedRouter.load()
    short = RequestView((Message(Role.USER, "Tell me about owls."),))
    long = RequestView((Message(Role.USER, "Tell me about owls. " * 30),))
    d = 0.5
    for task, sign in ((TaskType.OPEN_QA, -1.0), (TaskType.REASONING, 1.0)):
        gap = router.route_score(long, d, task) - router.route_score(short, d, task)
        assert gap * sign > 0.0, task
    lm, ls = meta["length"]
    z_long, z_short = (
        min(max(float(r.features.dense[cfg.length_feature] - lm) / ls, k.length_low), k.length_high)
        for r in (long, short)
    )
    expected = k.length_weight * (z_long - z_short)
    got = router.route_score(long, d, TaskType.OPEN_QA) - router.route_score(
        short, d, TaskType.OPEN_QA
    )
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_the_chat_route_can_be_switched_off_in_the_policy() -> None:
    """``[engine] chat_route = false``: chat tasks take the shared knobs, like reasoning, in the
    engine's router and in the slow router it builds; the native path follows the same knobs."""
    from dataclasses import replace

    from engine.factory import _slow_router, build_engine
    from engine.fastpath import fast_path
    from modelroute.config import load_config

    cfg = load_config()
    req = RequestView((Message(Role.USER, "Tell me about owls."),))
    on = LearnedRouter.load()
    off = LearnedRouter.load(chat_route=False)
    assert off.route_config.families == () and on.route_config.families != ()
    d = 0.4
    assert off.route_score(req, d, TaskType.OPEN_QA) == off.route_score(req, d, TaskType.REASONING)
    assert on.route_score(req, d, TaskType.OPEN_QA) != on.route_score(req, d, TaskType.REASONING)
    for chat_route in (True, False):
        engine = build_engine(replace(cfg, chat_route=chat_route))
        flat = engine.fused_signals
        assert flat is not None and fast_path(engine) is not None
        assert (flat.router.route.families != ()) is chat_route
        slow = _slow_router(MODELS_DIR, chat_route)
        assert slow is not None and slow.is_slow(TaskType.OPEN_QA) is not chat_route
