"""The task-type signal: known prompts, the score distribution, and the committed model file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

from engine.signals.base import RequestView
from engine.signals.task import MODEL_PATH, TaskClassifier
from engine.train.task_data import build, rule_label
from modelroute.domain import Message, Role, TaskType


@pytest.fixture(scope="module")
def clf() -> TaskClassifier:
    return TaskClassifier()


def _view(text: str) -> RequestView:
    return RequestView((Message(Role.USER, text),))


KNOWN = [
    ("Write a Python function that returns the n-th Fibonacci number.", TaskType.CODE),
    (
        "A baker sells 24 muffins in the morning and twice as many in the afternoon. "
        "Each muffin costs $3. How much money does she make in a day?",
        TaskType.MATH,
    ),
    (
        "Which of the following is a renewable resource?\nA. coal\nB. natural gas\n"
        "C. wind\nD. oil\nAnswer:",
        TaskType.REASONING,
    ),
    ("Write a poem about autumn leaves falling in an empty park.", TaskType.CREATIVE_WRITING),
    ("What are some good ways to improve my sleep?", TaskType.OPEN_QA),
    ("Translate the following into German.\n\nThe train leaves at noon.", TaskType.TRANSLATION),
]


@pytest.mark.parametrize(("text", "expected"), KNOWN)
def test_known_prompts(clf: TaskClassifier, text: str, expected: TaskType) -> None:
    result = clf.read(_view(text))
    assert result.task is expected
    assert result.confidence >= 0.5
    assert result.confidence == max(result.scores.values())


def test_scores_cover_every_class_and_sum_to_one(clf: TaskClassifier) -> None:
    result = clf.read(_view("Summarize this report in three bullet points."))
    assert set(result.scores) == set(TaskType)
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= s <= 1.0 for s in result.scores.values())
    assert clf.name == "task"


@pytest.mark.parametrize("text", ["", " ", "🙂" * 50, "数学题：一加一等于几？", "x" * 200_000])
def test_odd_inputs_do_not_crash(clf: TaskClassifier, text: str) -> None:
    result = clf.read(RequestView((Message(Role.USER, text),)))
    assert result.task in TaskType
    assert 0.0 < result.confidence <= 1.0


def test_uses_last_user_turn(clf: TaskClassifier) -> None:
    msgs = (
        Message(Role.USER, "Write a poem about the sea."),
        Message(Role.ASSISTANT, "The sea is wide..."),
        Message(Role.USER, "Now write a Python function that sorts a list of integers."),
    )
    assert clf.read(RequestView(msgs)).task is TaskType.CODE


def test_rule_labels() -> None:
    assert rule_label("Please translate this into Spanish") is TaskType.TRANSLATION
    assert rule_label("Write a haiku about rain") is TaskType.CREATIVE_WRITING
    assert rule_label("Why is the sky blue?") is TaskType.OPEN_QA


def test_committed_model_reproduces_training_probabilities(shared_data: Path) -> None:
    """The held-out rows recorded at training time still get scikit-learn's probabilities."""
    meta = ort.InferenceSession(str(MODEL_PATH)).get_modelmeta().custom_metadata_map
    probe = json.loads(meta["probe"])
    held = [e for e in build(shared_data) if e.held_out]
    clf = TaskClassifier()
    model_probs = np.stack([_probs(clf, held[i].text) for i in probe["held_out_rows"]])
    assert len(probe["held_out_rows"]) >= 30
    np.testing.assert_allclose(model_probs, np.asarray(probe["probs"]), atol=1e-4)


def _probs(clf: TaskClassifier, text: str) -> npt.NDArray[np.float64]:
    scores = clf.read(_view(text)).scores
    return np.asarray([scores[t] for t in clf.classes])
