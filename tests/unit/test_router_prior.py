"""Placing a model with no data from its ability prior and the prompt's difficulty."""

from __future__ import annotations

import pytest

from engine.router.prior import head_for, prior_quality
from modelroute.domain import TaskType


def test_average_difficulty_returns_the_prior() -> None:
    assert prior_quality(0.8, 0.5) == pytest.approx(0.8)


def test_harder_prompts_lower_every_model_and_keep_the_order() -> None:
    for d in (0.1, 0.5, 0.9):
        assert prior_quality(0.9, d) > prior_quality(0.6, d)
    assert prior_quality(0.7, 0.9) < prior_quality(0.7, 0.5) < prior_quality(0.7, 0.1)


def test_extremes_stay_in_unit_interval() -> None:
    assert 0.0 < prior_quality(0.0, 1.0) < prior_quality(1.0, 0.0) < 1.0


def test_task_families_map_to_difficulty_heads() -> None:
    assert head_for(TaskType.MATH) == "math"
    assert head_for(TaskType.CODE) == "code"
    assert head_for(TaskType.SUMMARIZATION) == "general"
