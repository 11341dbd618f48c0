"""Placing a model the router has no data for: its config ability prior, moved by difficulty.

A model's ``ability[task]`` (config) is its expected success rate on an average prompt of that
task family. The learned difficulty ``d`` (0.5 = an average prompt) shifts that prior in logit
space: ``p = sigmoid(logit(ability) - SLOPE * (d - 0.5) / 0.5)``. An easy prompt lifts every
model, a hard one lowers every model, and stronger models stay above weaker ones.
"""

from __future__ import annotations

import math

from modelroute.domain import TaskType

SLOPE = 1.5
_EPS = 1e-4


def head_for(task: TaskType) -> str:
    """Which difficulty head judges a task family."""
    if task == TaskType.MATH:
        return "math"
    if task == TaskType.CODE:
        return "code"
    return "general"


# Task families whose answers are judged by preference (a judge comparing two answers), not
# checked against one right answer. Their route score keeps the general difficulty head but has
# its own knobs (``engine.router.route``): on preference labels the length of the prompt points
# the other way (engine/eval/chat.py).
CHAT_TASKS = frozenset(
    {
        TaskType.OPEN_QA,
        TaskType.CREATIVE_WRITING,
        TaskType.SUMMARIZATION,
        TaskType.EXTRACTION,
        TaskType.CLASSIFICATION,
        TaskType.TRANSLATION,
    }
)
CHAT = "chat"


def family_for(task: TaskType) -> str:
    """The route family of a task: its difficulty head's name, or ``chat`` for the task
    families judged by preference (which read the general head)."""
    return CHAT if task in CHAT_TASKS else head_for(task)


def prior_logit(ability: float) -> float:
    """The ability prior in logit space (clipped away from 0 and 1)."""
    a = min(max(ability, _EPS), 1.0 - _EPS)
    return math.log(a / (1.0 - a))


def difficulty_shift(difficulty: float, slope: float = SLOPE) -> float:
    """How far the prompt's difficulty moves every prior, in logit space."""
    return slope * (min(max(difficulty, 0.0), 1.0) - 0.5) / 0.5


def prior_quality(ability: float, difficulty: float, slope: float = SLOPE) -> float:
    """Success probability of a model from its ability prior and the prompt's difficulty."""
    z = prior_logit(ability) - difficulty_shift(difficulty, slope)
    return 1.0 / (1.0 + math.exp(-z))
