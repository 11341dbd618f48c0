# Typing stub of the C extension engine/_heads.c.
from typing import Any, TypeAlias, overload

import numpy as np
from typing_extensions import Buffer

_Buf: TypeAlias = Buffer | np.ndarray[Any, Any]

def linear_logits(
    table: _Buf,
    k: int,
    mask: int,
    dense_base: int,
    bias: _Buf,
    indices: _Buf,
    values: _Buf,
    dense: _Buf,
    /,
) -> list[float]: ...
def activate(
    z: list[float], spec: tuple[tuple[int, int, bool], ...], /
) -> tuple[list[float], ...]: ...
@overload
def links(r: float, a: tuple[float, ...], b: tuple[float, ...], /) -> list[float]: ...
@overload
def links(
    r: float, a: tuple[float, ...], b: tuple[float, ...], c: tuple[float, ...], level: float, /
) -> list[float]: ...
