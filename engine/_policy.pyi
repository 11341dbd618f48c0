# Typing stub of the C extension engine/_policy.c.
from collections.abc import Set
from typing import TypeVar

from engine.policy_tables import ModelRow
from modelroute.domain import Candidate, ErrorPolicy, Hop

_T = TypeVar("_T")

def candidates(
    cls: type[Candidate],
    rows: tuple[ModelRow, ...],
    logits: tuple[float, ...],
    quality: dict[str, float],
    allowed: Set[str],
    params: tuple[int, int, float, float, float, float, float, int, float],
    /,
) -> tuple[list[Candidate], list[int], int]: ...
def finish(
    hop_cls: type[Hop],
    cands: list[Candidate],
    rows: tuple[ModelRow, ...],
    declared: tuple[int, ...],
    max_hops: int,
    params: tuple[int, int, float, int, int],
    actions: tuple[ErrorPolicy, ...],
    reason: tuple[str, float, float, str, int, bool],
    /,
) -> tuple[int, tuple[Hop, ...], str]: ...
def build(cls: type[_T], values: tuple[object, ...], /) -> _T: ...
def format_fixed(x: float, digits: int, /) -> str: ...
