"""Builds the engine with its real signals: offline token count, task classifier, learned router."""

from __future__ import annotations

from pathlib import Path

from engine.router.learned import LearnedRouter
from engine.service import Engine
from engine.signals.task import TaskClassifier
from engine.signals.tokens import TokenCounter
from modelroute.config import Config


def build_engine(cfg: Config, models_dir: Path | None = None) -> Engine:
    """Load the committed ONNX models (a few MB) and return a ready engine."""
    task = TaskClassifier(models_dir / "task.onnx") if models_dir else TaskClassifier()
    return Engine(cfg, tokens=TokenCounter(), task=task, router=LearnedRouter.load(models_dir))
