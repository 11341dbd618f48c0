"""The ``chat`` route family's knobs for the router in ``out_dir`` (``engine.eval.chat``).

Run at the end of ``train_router.train`` and alone by ``modelroute train --only chat_route``.
Reads ``router.json`` and ``router_difficulty.onnx`` that ``train_router`` wrote (or the
committed ones), scores the 805 AlpacaEval instructions with the router's difficulty heads, picks
the chat family's knobs by the best mean APGR over AlpacaEval's five source sets (the shared
knobs when nothing does better; ``engine.eval.chat``) and writes them into ``router.json`` under
``route.families``. Then, on the route with those knobs, a link for each model that appears only
in the AlpacaEval preferences (``engine.train.preference_links``), listed under
``preference_links``. Nothing else in the file changes; running it twice gives the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.eval.chat import choose, routes
from engine.eval.chat_eval import chat_set
from engine.router.learned import LearnedRouter
from engine.router.route import RouteConfig, as_link
from engine.signals.base import RequestView
from engine.train.preference_links import bridged_links, held_out_brier, preferences
from engine.train.train_router import link_json
from modelroute.domain import Message, Role


def train(data_dir: Path, out_dir: Path) -> dict[str, object]:
    path = out_dir / "router.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: train the router first (modelroute train --only router)")
    meta = json.loads(path.read_text(encoding="utf-8"))
    router = LearnedRouter.load(out_dir)
    shared = RouteConfig.from_json(meta["route"]).shared()
    cs = chat_set(data_dir)
    d = np.array(
        [
            router.difficulty(RequestView((Message(Role.USER, p),)), t)
            for p, t in zip(cs.prompts, cs.tasks, strict=True)
        ]
    )
    length = np.array([f.dense[shared.length_feature] for f in cs.feats], dtype=np.float64)
    best, table = choose(d, length, cs, shared, router.route_stats, sorted(set(cs.datasets)))
    meta["route"] = best.to_json()
    # the preference models' links, on the route with the knobs just chosen
    route = routes(d, cs.tasks, length, best, router.route_stats)
    prefs = preferences(data_dir, cs.prompts)
    old = set(meta.get("preference_links", []))
    links = {m: as_link(v) for m, v in meta["link"].items() if m not in old}
    added = bridged_links(route, prefs, cs.datasets, links)
    links.update(added)
    meta["link"] = link_json(links)
    meta["preference_links"] = sorted(added)
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    brier = held_out_brier(route, prefs, cs.datasets)
    return {
        "route": best.to_json(),
        "preference_links": sorted(added),
        "held_out_brier_link_vs_mean": {m: [round(x, 4) for x in v] for m, v in brier.items()},
        "candidates": [{"route": c.to_json(), "mean_apgr": round(m, 4)} for c, m in table],
        "prompts": len(cs.prompts),
    }
