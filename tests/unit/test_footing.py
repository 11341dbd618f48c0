"""The pair's footing: a decision that weighs the pair alone (gpt-4-1106-preview and
Mixtral-8x7B-Instruct, by router key) takes their pair links; any other, the default links
(GPT-4-1106 on its level link). The Python path, the native path, the slow path and
``modelroute score`` agree (docs/router.md, "GPT-4-1106's footing")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.router.learned import MODELS_DIR, LearnedRouter, read_meta
from engine.service import Engine
from engine.signals.base import RequestView
from modelroute.config import Config
from modelroute.domain import Message, Role, TaskType
from modelroute.v1 import common_pb2, engine_pb2


def test_the_engine_and_its_slow_router_follow_pair_links() -> None:
    """``[engine] pair_links``: the engine's fused (and native) links are the pair's; the slow
    router gives its slow p to the pair models on the pair footing of the decision."""
    from dataclasses import replace

    from engine.embed.router import PAIR_MODELS, SlowRouter
    from engine.factory import _slow_router, build_engine
    from engine.fastpath import fast_path
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
        # the engine's own router holds the links of every decision: no tier leaves the
        # native path for the pair router, and the native path answers as the Python one
        assert not engine.tier_takes_the_pair_router("standard")
        fp = fast_path(engine)
        assert fp is not None
        raw = _decide_request("Why is the sky blue?", "standard").SerializeToString()
        out = fp.decide(raw)
        assert out is not None
        assert _same_decision(out, _python_decision(engine, raw))
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
    """Per decision: the candidates the router links (tier, then the request's allowed models;
    each by its router key) are the pair's alone -> the pair links; else the default links. A
    tier of the pair alone leaves the native path, which holds the default links only."""
    from dataclasses import replace

    from engine.factory import build_engine
    from engine.fastpath import _tiers
    from modelroute.config import load_config
    from modelroute.domain import DecideInput, Overrides

    meta = read_meta(MODELS_DIR)
    link, pair = meta["link"], meta["pair_link"]
    assert isinstance(link, dict) and isinstance(pair, dict)
    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    cfg = _with_aliases(load_config())
    duo = replace(cfg.tiers["standard"], name="duo", allowed_models=(strong, weak))
    engine = build_engine(replace(cfg, tiers={**cfg.tiers, "duo": duo}))
    msgs = (Message(Role.USER, "Explain why the derivative of x squared is 2x."),)

    def inp(tier: str, *allowed: str) -> DecideInput:
        return DecideInput(messages=msgs, tier=tier, overrides=Overrides(allowed_models=allowed))

    cases = [
        (inp("standard"), link),
        (inp("standard", strong, weak), pair),
        (inp("duo"), pair),
        # a model the router does not link beside the pair does not change the footing
        (inp("standard", strong, weak, "local-model"), pair),
        # another linked model does, also under another name (its router key is claude-v2)
        (inp("standard", strong, weak, "claude-v2"), link),
        (inp("standard", strong, weak, "claude-v2-eu"), link),
    ]
    for case, table in cases:
        d = engine.decide(case)
        q = {c.model.name: c.predicted_quality for c in d.signals.candidates}
        router = LearnedRouter.load(pair_links=table is pair)
        want = router.score(RequestView(msgs), d.signals.task).quality
        assert q[strong] == pytest.approx(want[strong]) and q[weak] == pytest.approx(want[weak])
        assert engine.weighs_the_pair(case) is (table is pair)
    assert link[strong] != pair[strong]
    assert engine.tier_takes_the_pair_router("duo")
    assert not engine.tier_takes_the_pair_router("standard")
    flags = {name: t[-1] for name, t in _tiers(engine).items()}
    assert flags["duo"] is False and flags["standard"] is True


def _with_aliases(cfg: Config) -> Config:
    """``cfg`` with "claude-v2-eu" (router key claude-v2, which the router links) and
    "local-model" (a router key the router does not know: placed by its ability prior)."""
    from dataclasses import replace

    one = cfg.models["claude-v2"]
    extra = {
        name: replace(one, name=name, router_key=key, ref=replace(one.ref, name=name))
        for name, key in (("claude-v2-eu", "claude-v2"), ("local-model", "local-model"))
    }
    return replace(cfg, models={**cfg.models, **extra})


def _decide_request(text: str, tier: str, *allowed: str) -> engine_pb2.DecideRequest:
    req = engine_pb2.DecideRequest(tier=tier)
    req.messages.add(role=common_pb2.ROLE_USER, content=text)
    req.overrides.allowed_models.extend(allowed)
    return req


def _python_decision(engine: Engine, raw: bytes) -> bytes:
    from engine.wire_decode import decide_input
    from engine.wire_encode import DecisionEncoder

    return DecisionEncoder().encode(
        engine.decide(decide_input(engine_pb2.DecideRequest.FromString(raw)))
    )


def _same_decision(a: bytes, b: bytes) -> bool:
    """Equal Decisions apart from the ids and the decision time."""
    da, db = engine_pb2.Decision.FromString(a), engine_pb2.Decision.FromString(b)
    for d in (da, db):
        d.decision_id, d.request_id, d.decision_time_us = "", "", 0
    return da == db


def test_the_native_path_leaves_exactly_the_requests_of_the_pair_alone() -> None:
    """The footing bytes the native path reads: a request narrowed to the pair (with or without
    a model the router does not link) takes the Python path; beside another linked model, under
    its own name or an alias, it is decided natively, as the Python path does."""
    from engine.factory import build_engine
    from engine.fastpath import fast_path
    from modelroute.config import load_config

    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    engine = build_engine(_with_aliases(load_config()))
    fp = fast_path(engine)
    assert fp is not None
    text = "Explain why the derivative of x squared is 2x."
    for allowed, native in (
        ((strong, weak), False),
        ((strong, weak, "local-model"), False),
        ((strong, weak, "claude-v2"), True),
        ((strong, weak, "claude-v2-eu"), True),
        ((weak, "local-model"), False),
    ):
        for tier in ("standard", "premium"):
            raw = _decide_request(text, tier, *allowed).SerializeToString()
            out = fp.decide(raw)
            assert (out is not None) is native, (tier, allowed)
            if out is not None:
                assert _same_decision(out, _python_decision(engine, raw))


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
    # a model without a link (placed by its ability prior) does not change the footing; one
    # known to the router by another name does
    aliases = _with_aliases(cfg).models
    for name, alone in (("local-model", True), ("claude-v2-eu", False)):
        models = {**only_pair.models, name: aliases[name]}
        assert uses_pair_links(replace(cfg, models=models), meta) is alone


def test_pair_links_need_them_in_the_file(tmp_path: Path) -> None:
    meta = json.loads((MODELS_DIR / "router.json").read_text(encoding="utf-8"))
    del meta["pair_link"]
    (tmp_path / "router.json").write_text(json.dumps(meta), encoding="utf-8")
    assert read_meta(tmp_path)["link"] == meta["link"]
    with pytest.raises(ValueError, match="no pair_link"):
        read_meta(tmp_path, pair_links=True)


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


def test_the_score_cli_reads_a_policy_model_by_its_router_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy model under another name (router key gpt-4-1106-preview) is scored as the
    engine weighs it: by its router key, on the pair links beside Mixtral-Instruct alone."""
    import argparse
    import io

    from engine.router import cmd_score
    from modelroute.config import DEFAULT_CONFIG_PATH

    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
    block = text[text.index("[[models]]") : text.index("[[models]]", text.index("[[models]]") + 1)]
    alias = block.replace(f'name = "{strong}"', f'name = "gpt4-eu"\nrouter_key = "{strong}"')
    cfg_path = tmp_path / "policy.toml"
    cfg_path.write_text(text + "\n" + alias, encoding="utf-8")
    prompt = "Explain why the sum of two odd numbers is even."
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"id": "x", "prompt": prompt})))
    args = argparse.Namespace(
        models=f"gpt4-eu,{weak}", config=cfg_path, models_dir=None, slow=False, batch=8
    )
    assert cmd_score.run(args) == 0
    rec = json.loads(capsys.readouterr().out)
    want = LearnedRouter.load(pair_links=True).score(
        RequestView((Message(Role.USER, prompt),)), TaskType.from_label(rec["task"])
    )
    assert rec["scores"]["gpt4-eu"] == pytest.approx(want.quality[strong], abs=1e-6)
