"""Answer-shape features of a model's answer: what the cascade verifier reads.

The data holds no token log-probabilities, so the verifier scores the answer's text: its length,
a stated final answer, hedging, truncation, arithmetic steps, a number at the end and the
prompt's length. One definition, used by the offline analysis (``engine.eval.cascade``), the
trainer (``engine.train.train_verifier``) and the runtime (``engine.verifier``).
"""

from __future__ import annotations

import math
import re

N_FEATURES = 8
_HEDGE = re.compile(
    r"\b(not sure|cannot|can't|unable|sorry|unclear|assum|approximately|might)\b", re.I
)
_FINAL = re.compile(r"(answer is|####|\\boxed|final answer|therefore|so the answer)", re.I)
_NUM = re.compile(r"\d+(?:\.\d+)?")
_CLOSERS = (".", "!", "?", "`", ")", "]", "}")


def answer_features(prompt: str, answer: str) -> list[float]:
    """``N_FEATURES`` values in [0, ~1.5] describing the answer's shape."""
    a = answer.strip()
    nums = _NUM.findall(a)
    tail = a[-80:]
    return [
        math.log1p(len(a)) / 8.0,
        math.log1p(len(prompt)) / 8.0,
        1.0 if _FINAL.search(a) else 0.0,
        min(len(_HEDGE.findall(a)), 5) / 5.0,
        1.0 if a.endswith(_CLOSERS) or (nums and tail.endswith(nums[-1])) else 0.0,
        min(a.count("="), 20) / 20.0,
        1.0 if _NUM.search(tail) else 0.0,
        min(len(nums), 40) / 40.0,
    ]
