"""Builds the engine with its real signals: offline token count, task classifier, learned router.

The task classifier and the router's heads share one merged onnxruntime session, run once per
request (see ``engine.onnx_group``).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.onnx_group import SparseModelGroup
from engine.router.learned import MODELS_DIR, LearnedRouter
from engine.service import Engine
from engine.signals.task import TaskClassifier
from engine.signals.tokens import TokenCounter
from modelroute.config import Config


def build_engine(cfg: Config, models_dir: Path | None = None) -> Engine:
    """Load the committed ONNX models (a few MB) and return a ready engine."""
    d = models_dir or MODELS_DIR
    group = SparseModelGroup(
        {
            "task": d / "task.onnx",
            "difficulty": d / "router_difficulty.onnx",
            "quality": d / "router_quality.onnx",
        }
    )
    meta = json.loads((d / "router.json").read_text(encoding="utf-8"))
    router = LearnedRouter(group.member("difficulty"), group.member("quality"), meta)
    task = TaskClassifier(model=group.member("task"))
    return Engine(cfg, tokens=TokenCounter(), task=task, router=router)
