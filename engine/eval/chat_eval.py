"""The pair on open-ended chat (AlpacaEval, judged by preference) in ``modelroute eval``.

The difficulty heads are fitted as the shipped router's are (every 7B-model and RouterBench row,
the shipped route knobs): no AlpacaEval row is in them. The chat family's knobs are the only
thing fitted on AlpacaEval, and each source set is scored with the knobs fitted on the other
four (``engine.eval.chat.nested_routes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.eval.bootstrap import apgr_interval, paired_bootstrap
from engine.eval.chat import Arr, ChatSet, load_chat, nested_routes, routes
from engine.eval.metrics import apgr, cpt, decile_curve, savings_at
from engine.eval.pair import PairResult
from engine.eval.route_select import Corpus, fit_route
from engine.eval.tasks import sensitivity, tasks_of
from engine.router.prior import CHAT, head_for
from engine.router.route import RouteConfig

BENCH = "alpaca_eval (chat)"
SHARED = "combined, shared knobs (before the chat family)"
CHAT_ROUTER = "combined + chat family knobs (nested by source set)"
ROUTERS = (
    "random",
    "length only",
    "length only, inverted",
    "task only",
    "difficulty only",
    SHARED,
    CHAT_ROUTER,
    "oracle",
)


@dataclass(frozen=True, slots=True)
class ChatEval:
    results: list[PairResult]
    chosen: dict[str, RouteConfig]  # per source set, the knobs chosen on the other four
    interval: tuple[float, float, float]  # the chat router's APGR, 95% bootstrap interval
    delta: tuple[float, float, float]  # its APGR minus the shared knobs', paired bootstrap
    per_set: dict[str, dict[str, float]]  # per source set, APGR of PER_SET's routers


PER_SET = ("random", "length only, inverted", SHARED, CHAT_ROUTER, "oracle")


def _per_set(cs: ChatSet, scores: dict[str, Arr]) -> dict[str, dict[str, float]]:
    ds = np.asarray(cs.datasets)
    out = {}
    for name in sorted(set(cs.datasets)):
        sel = ds == name
        out[name] = {
            r: apgr(decile_curve(scores[r][sel], cs.strong[sel], cs.weak[sel])) for r in PER_SET
        }
    return out


def chat_set(data_dir: Path) -> ChatSet:
    return load_chat(data_dir, lambda ps: tasks_of(ps, "alpaca_eval"))


def evaluate_chat(
    data_dir: Path, corpus: Corpus, cfg: RouteConfig, cs: ChatSet | None = None
) -> ChatEval:
    """Every router's pair metrics on the 805 AlpacaEval instructions, the chat knobs chosen
    for each source set, and the bootstrap intervals (test-sample noise: 1,000 resamples)."""
    cs = cs or chat_set(data_dir)
    shared = cfg.shared()
    fitted = fit_route(corpus, [], shared.c_general)
    pred = fitted.diff.predict(cs.feats).astype(np.float64)
    cols = [fitted.diff.labels.index(head_for(t)) for t in cs.tasks]
    d = pred[np.arange(len(cs.feats)), cols]
    length = np.array([f.dense[shared.length_feature] for f in cs.feats], dtype=np.float64)
    stats = fitted.stats(shared)
    nested, chosen = nested_routes(d, length, cs, shared, stats)
    rng = np.random.default_rng(0)
    n = len(cs.prompts)
    chars = np.array([f.dense[0] for f in cs.feats], dtype=np.float64)  # log characters
    scores = {
        "random": rng.random(n),
        "length only": chars,
        "length only, inverted": -chars,
        "task only": np.array([sensitivity(t) for t in cs.tasks]) + 1e-3 * rng.random(n),
        "difficulty only": routes(
            d, cs.tasks, length, RouteConfig(shared.c_general, 0, 0.0), stats
        ),
        SHARED: routes(d, cs.tasks, length, shared, stats),
        CHAT_ROUTER: nested,
        "oracle": (cs.strong - cs.weak) + 1e-3 * rng.random(n),
    }
    out = []
    for name in ROUTERS:
        c = decile_curve(scores[name], cs.strong, cs.weak)
        out.append(PairResult(BENCH, name, c, apgr(c), cpt(c, 0.5), cpt(c, 0.8), savings_at(c)))
    s, w = cs.strong, cs.weak
    return ChatEval(
        out,
        chosen,
        apgr_interval(nested, s, w),
        paired_bootstrap(nested, scores[SHARED], s, w),
        _per_set(cs, scores),
    )


def _knobs(cfg: RouteConfig) -> str:
    if not any(name == CHAT for name, _ in cfg.families):
        return "the shared knobs"
    k = cfg.knobs(CHAT)
    return (
        f"difficulty weight {k.difficulty_weight:.3f}, length weight {k.length_weight:.3f} "
        f"(w = {k.length_weight / k.difficulty_weight:g}), offset {k.offset:.3f}, "
        f"z(length) in [{k.length_low:.2f}, {k.length_high:.2f}]"
    )


def chat_section(e: ChatEval) -> str:
    """The report's section on open-ended chat."""
    from engine.eval.report import pair_table

    knobs = "\n".join(f"- {held}: {_knobs(cfg)}" for held, cfg in e.chosen.items())
    sets = "\n".join(
        f"| {name} | " + " | ".join(f"{v[r]:.3f}" for r in PER_SET) + " |"
        for name, v in e.per_set.items()
    )
    a, lo, hi = e.interval
    d, dlo, dhi = e.delta
    return f"""## Open-ended chat: the pair on AlpacaEval (805 instructions, judged by preference)

Quality = the routed system's win rate against gpt-4-1106-preview as judged by GPT-4-turbo
(AlpacaEval's annotations; the strong model's own answer counts 0.5). The difficulty heads never
saw these instructions; the chat route family's knobs (the length weight, chosen from a grid, and
the standardization and length range of the chat prompts) are the only thing fitted on them, and
each source set (helpful_base, koala, oasst, selfinstruct, vicuna) is scored with the knobs
fitted on the other four. Task from the engine's classifier; only the chat family's tasks
(open_qa, creative_writing, summarization, extraction, classification, translation) move.

{pair_table(e.results)}

Chat router APGR {a:.3f}, 95% interval [{lo:.3f}, {hi:.3f}] (1,000 resamples of the prompts);
minus the shared knobs' APGR: {d:+.3f} [{dlo:+.3f}, {dhi:+.3f}] (paired).

APGR per source set (vicuna = the 80 Vicuna-bench questions, MT-Bench's predecessor; about 80 to
250 prompts each, so each figure is noisy):

| set | {" | ".join(PER_SET)} |
| --- | --- | --- | --- | --- | --- |
{sets}

Knobs fitted for each held-out source set (on the other four):

{knobs}
"""


__all__ = [
    "BENCH",
    "CHAT_ROUTER",
    "ROUTERS",
    "SHARED",
    "ChatEval",
    "chat_section",
    "chat_set",
    "evaluate_chat",
]
