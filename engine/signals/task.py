"""Task-type signal: which kind of work the prompt asks for, with a confidence.

A multinomial logistic regression over the shared featurizer's output, from
``engine/models/task.onnx``: run in onnxruntime, or, fused with the router heads by
``engine.onnx_group``, by the native kernel checked against it. Trained by
``modelroute train --only task``; classes, data and held-out precision/recall in
``docs/signals.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from engine.onnx_sparse import SparseHead, SparseModel
from engine.signals.base import RequestView
from modelroute.domain import TaskType

MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "task.onnx"


class TaskResult(NamedTuple):
    task: TaskType
    confidence: float
    scores: Mapping[TaskType, float]


class TaskClassifier:
    """Signal: the most likely ``TaskType`` of the request's prompt and every class's score."""

    name = "task"

    def __init__(self, path: str | Path = MODEL_PATH, *, model: SparseHead | None = None) -> None:
        """Load ``path``, or use ``model`` (e.g. a member of a merged ``SparseModelGroup``)."""
        self._model: SparseHead = model if model is not None else SparseModel(path)
        by_label = {t.label: t for t in TaskType}
        unknown = [lbl for lbl in self._model.labels if lbl not in by_label]
        if unknown or not self._model.labels:
            raise ValueError(f"{path}: labels {self._model.labels} do not match TaskType")
        self._classes = tuple(by_label[lbl] for lbl in self._model.labels)

    @property
    def classes(self) -> tuple[TaskType, ...]:
        return self._classes

    @property
    def model(self) -> SparseHead:
        return self._model

    def read(self, req: RequestView) -> TaskResult:
        probs = self._model.predict(req.features)
        if not isinstance(probs, list):
            probs = probs.tolist()
        scores = dict(zip(self._classes, probs, strict=True))
        best = max(scores, key=scores.__getitem__)
        return TaskResult(best, scores[best], MappingProxyType(scores))
