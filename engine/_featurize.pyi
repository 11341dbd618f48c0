# Typing stub of the C extension engine/_featurize.c.
from typing import Any, TypeAlias

import numpy as np
from typing_extensions import Buffer

_Buf: TypeAlias = Buffer | np.ndarray[Any, Any]

def hashed_counts(data: bytes, bits: int, /) -> tuple[bytes, bytes]: ...
def features(
    lower: bytes, sample: bytes, bits: int, n_chars: int, n_spaces: int, n_lines: int, /
) -> tuple[bytes, bytes, bytes]: ...
def features_ascii(
    text: str, bits: int, head: int, tail: int, /
) -> tuple[bytes, bytes, bytes] | None: ...
def class_counts(data: bytes, /) -> list[float]: ...
def class_dot(data: bytes, coef: tuple[float, ...], scale: float, /) -> float: ...
def sample_stats(data: bytes, /) -> tuple[int, int, int, int, int, int, int, int, int]: ...
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
def links(r: float, a: tuple[float, ...], b: tuple[float, ...], /) -> list[float]: ...
