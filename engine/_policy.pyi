# Typing stub of the C extension engine/_policy.c.
from collections.abc import Set

from engine.policy_tables import ModelRow
from modelroute.domain import Candidate

def candidates(
    cls: type[Candidate],
    rows: tuple[ModelRow, ...],
    logits: tuple[float, ...],
    quality: dict[str, float],
    allowed: Set[str],
    params: tuple[int, int, float, float, float, float, float, int, float],
    /,
) -> tuple[list[Candidate], list[int]]: ...
