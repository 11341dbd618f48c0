"""The combined route score: formula, knobs round trip, and the shipped router's use of them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.router.learned import MODELS_DIR, LearnedRouter, read_meta
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


def test_the_engine_and_its_slow_router_follow_pair_links() -> None:
    """``[engine] pair_links``: the engine's fused (and native) links are the pair's; the slow
    router gives its slow p to the pair models on the pair footing of the decision."""
    from dataclasses import replace

    from engine.embed.router import PAIR_MODELS, SlowRouter
    from engine.factory import _slow_router, build_engine
    from modelroute.config import load_config

    cfg = load_config()
    strong = "gpt-4-1106-preview"
    req = RequestView((Message(Role.USER, "Why is the sky blue?"),))
    for pair_links in (False, True):
        engine = build_engine(replace(cfg, pair_links=pair_links))
        flat = engine.fused_signals
        assert flat is not None
        c = dict(zip(flat.router.link_names, flat.router.link_c, strict=True))
        assert (c[strong] == 0.0) is pair_links
        assert engine.tier_weighs_the_pair("standard") is pair_links
    slow = _slow_router(MODELS_DIR, True)
    assert isinstance(slow, SlowRouter)
    for pair in (False, True):
        fast = slow.fast_for(pair).score(req, TaskType.REASONING).quality
        assert (
            fast[strong] == slow.fast.score(req, TaskType.REASONING).quality[strong]
        ) is not pair
        got = slow.score_batch([req], [TaskType.REASONING], pair)[0].quality
        # a pair model on the decision's pair footing takes the slow p; GPT-4-1106 on its level
        # link keeps its fast p
        moved = {m for m in PAIR_MODELS if got[m] != fast[m]}
        assert moved == (PAIR_MODELS if pair else PAIR_MODELS - {strong})


def test_a_decision_that_weighs_the_pair_alone_takes_the_pair_links() -> None:
    """Per decision: the candidates the router links (tier, then the request's allowed models)
    are the pair's alone -> the pair links; else the default links. A tier of the pair alone
    leaves the native path, which holds the default links only."""
    from dataclasses import replace

    from engine.factory import build_engine
    from engine.fastpath import _tiers
    from modelroute.config import load_config
    from modelroute.domain import DecideInput, Overrides

    meta = read_meta(MODELS_DIR)
    link, pair = meta["link"], meta["pair_link"]
    assert isinstance(link, dict) and isinstance(pair, dict)
    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    cfg = load_config()
    duo = replace(cfg.tiers["standard"], name="duo", allowed_models=(strong, weak))
    engine = build_engine(replace(cfg, tiers={**cfg.tiers, "duo": duo}))
    msgs = (Message(Role.USER, "Explain why the derivative of x squared is 2x."),)
    ov = Overrides(allowed_models=(strong, weak))
    cases = [
        (DecideInput(messages=msgs, tier="standard"), link),
        (DecideInput(messages=msgs, tier="standard", overrides=ov), pair),
        (DecideInput(messages=msgs, tier="duo"), pair),
        # a model without outcomes beside the pair does not change the footing; another
        # linked model does
        (DecideInput(messages=msgs, tier="standard",
                     overrides=Overrides(allowed_models=(strong, "claude-v2"))), link),
    ]  # fmt: skip
    for inp, table in cases:
        d = engine.decide(inp)
        q = {c.model.name: c.predicted_quality for c in d.signals.candidates}
        view = RequestView(msgs)
        router = LearnedRouter.load(pair_links=table is pair)
        want = router.score(view, d.signals.task).quality
        assert q[strong] == pytest.approx(want[strong]) and q[weak] == pytest.approx(want[weak])
        assert engine.weighs_the_pair(inp) is (table is pair)
    assert link[strong] != pair[strong]
    assert engine.tier_weighs_the_pair("duo") and not engine.tier_weighs_the_pair("standard")
    # a configured model is known to the router by its router key, not its name
    one = next(v for v in cfg.models.values() if v.name == "claude-v2")
    alias = replace(one, name="claude-v2-eu", ref=replace(one.ref, name="claude-v2-eu"))
    aliased = build_engine(replace(cfg, models={**cfg.models, "claude-v2-eu": alias}))
    inp = DecideInput(messages=msgs, tier="standard",
                      overrides=Overrides(allowed_models=(strong, "claude-v2-eu")))  # fmt: skip
    assert alias.router_key == "claude-v2" and not aliased.weighs_the_pair(inp)
    flags = {name: t[-1] for name, t in _tiers(engine).items()}
    assert flags["duo"] is False and flags["standard"] is True


def test_a_configuration_of_the_pair_alone_takes_the_pair_links() -> None:
    from dataclasses import replace

    from engine.factory import uses_pair_links
    from modelroute.config import load_config

    cfg, meta = load_config(), read_meta(MODELS_DIR)
    assert isinstance(meta["pair_link"], dict)
    pair = set(meta["pair_link"])
    only_pair = replace(cfg, models={k: v for k, v in cfg.models.items() if v.name in pair})
    assert len(only_pair.models) == 2
    assert uses_pair_links(only_pair, meta) and not uses_pair_links(cfg, meta)
    assert uses_pair_links(replace(cfg, pair_links=True), meta)
    # a model without a link (placed by its ability prior) does not change the footing
    one = next(v for v in cfg.models.values() if v.name == "claude-v2")
    unknown = {**only_pair.models, "new": replace(one, name="a-model-not-in-the-data")}
    assert uses_pair_links(replace(cfg, models=unknown), meta)


def test_pair_links_need_them_in_the_file(tmp_path: Path) -> None:
    meta = json.loads((MODELS_DIR / "router.json").read_text(encoding="utf-8"))
    del meta["pair_link"]
    (tmp_path / "router.json").write_text(json.dumps(meta), encoding="utf-8")
    assert read_meta(tmp_path)["link"] == meta["link"]
    with pytest.raises(ValueError, match="no pair_link"):
        read_meta(tmp_path, pair_links=True)


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


def test_the_score_cli_scores_the_pair_alone_on_the_pair_links(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import io

    from engine.router import cmd_score

    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    prompt = "Explain why the sum of two odd numbers is even."
    for models, pair in (((strong, weak), True), ((strong, weak, "claude-v2"), False)):
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"id": "x", "prompt": prompt})))
        args = argparse.Namespace(
            models=",".join(models), config=None, models_dir=None, slow=False, batch=8
        )
        assert cmd_score.run(args) == 0
        rec = json.loads(capsys.readouterr().out)
        router = LearnedRouter.load(pair_links=pair)
        want = router.score(
            RequestView((Message(Role.USER, prompt),)), TaskType.from_label(rec["task"])
        )
        assert rec["scores"][strong] == pytest.approx(want.quality[strong], abs=1e-6)
        assert rec["scores"][weak] == pytest.approx(want.quality[weak], abs=1e-6)
    assert LearnedRouter.load(pair_links=True).link(strong) != LearnedRouter.load().link(strong)
