"""The cascade verifier at run time: how likely a cheap model's answer is correct.

``engine/models/verifier.onnx`` holds one logistic regression per task family over
``answer_features`` (``modelroute train --only verifier``); ``verifier.json`` names the families
and holds each one's escalation threshold (chosen on the data to keep 95% of the strong model's
quality). A family the verifier was not fitted for uses the ``general`` column.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engine.answer_features import answer_features
from engine.onnx_sparse import session_options

MODELS_DIR = Path(__file__).resolve().parent / "models"
GENERAL = "general"


@functools.lru_cache(maxsize=4)
def calibrated_thresholds(models_dir: Path = MODELS_DIR) -> tuple[str, dict[str, float]]:
    """The verifier's name and escalation threshold per family (read once; no session)."""
    doc = json.loads((models_dir / "verifier.json").read_text(encoding="utf-8"))
    cal = doc["calibration"]
    return str(doc["name"]), {f: float(cal[f]["threshold"]) for f in doc["families"]}


@dataclass(frozen=True, slots=True)
class FamilyCalibration:
    threshold: float
    ece: float
    n: int


class Verifier:
    """Scores (prompt, answer) pairs; one single-threaded onnxruntime session."""

    def __init__(
        self, session: ort.InferenceSession, name: str, calibration: dict[str, FamilyCalibration]
    ) -> None:
        self._session = session
        self.name = name
        self.calibration = calibration
        self._column = {f: i for i, f in enumerate(calibration)}
        if GENERAL not in self._column:
            raise ValueError("the verifier needs a 'general' family")

    @classmethod
    def load(cls, models_dir: Path = MODELS_DIR) -> Verifier:
        doc = json.loads((models_dir / "verifier.json").read_text(encoding="utf-8"))
        cal = doc["calibration"]
        families = {
            f: FamilyCalibration(
                float(cal[f]["threshold"]), float(cal[f]["ece_cross_fitted"]), int(cal[f]["n"])
            )
            for f in doc["families"]
        }
        session = ort.InferenceSession(
            str(models_dir / "verifier.onnx"),
            sess_options=session_options(),
            providers=["CPUExecutionProvider"],
        )
        return cls(session, str(doc["name"]), families)

    def family(self, task: str) -> str:
        return task if task in self._column else GENERAL

    def threshold(self, task: str) -> float:
        """The escalation threshold for a task family (the general one when not fitted)."""
        return self.calibration[self.family(task)].threshold

    def confidence(self, prompt: str, answer: str, task: str = GENERAL) -> float:
        """Probability in [0, 1] that ``answer`` is a correct answer to ``prompt``."""
        x = np.asarray([answer_features(prompt, answer)], dtype=np.float32)
        (probs,) = self._session.run(["probs"], {"x": x})
        return float(np.asarray(probs)[0, self._column[self.family(task)]])
