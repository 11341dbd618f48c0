"""Fast text featurizer shared by every learned signal: hashed word n-grams plus dense stats.

The n-gram hashing and the byte statistics of the dense features run in a small C extension
(``engine/_featurize.c``), so the whole call stays in C for all but a few steps. Long prompts are
featurized from their head and tail only (``HEAD_CHARS`` + ``TAIL_CHARS``) so the cost is
bounded; their length still enters through the dense features.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from engine._featurize import features, features_ascii, hashed_counts, sample_stats

HASH_BITS = 18
HASH_SIZE = 1 << HASH_BITS
HEAD_CHARS = 2048
TAIL_CHARS = 512
DENSE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "log_lines",
    "digit_ratio",
    "upper_ratio",
    "punct_ratio",
    "code_hint",
    "math_hint",
    "question_marks",
    "non_ascii_ratio",
    "bias",
)
DENSE_DIM = len(DENSE_NAMES)


class Features(NamedTuple):
    """Sparse hashed n-grams (indices, values) plus a dense vector of length ``DENSE_DIM``."""

    indices: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]
    dense: npt.NDArray[np.float32]


def clip_text(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def sparse_counts(
    text: str, clipped: str | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Hashed unigram and bigram buckets of the (clipped, lower-cased) text, and their counts.

    Tokens are runs of [a-z], of digits and of non-ASCII bytes, and each other non-space byte; a
    unigram hashes to crc32(token), a bigram continues the previous token's crc32 over the current
    one. The C extension ``engine._featurize`` does the work (pure Python cost ~1 us per token).
    """
    sample = clip_text(text) if clipped is None else clipped
    idx, cnt = hashed_counts(sample.lower().encode("utf-8"), HASH_BITS)
    return np.frombuffer(idx, dtype=np.int64), np.frombuffer(cnt, dtype=np.float32)


def dense_features(text: str, clipped: str | None = None) -> list[float]:
    """Length, line and character-mix statistics; ``clipped`` is ``clip_text(text)`` if known.

    The byte counts of the clipped sample come from one C pass
    (``engine._featurize.sample_stats``): digits, upper-case, punctuation, non-ASCII bytes, code
    markers (```` ``` ````, ``def ``, ``class ``, ``return``, ``;\\n``, ``{\\n``, ``#include``,
    ``=>``, ``function``), arithmetic like ``3 + 4``, ``\\frac``, ``$`` and ``?``.
    """
    n = len(text) or 1
    sample = (clip_text(text) if clipped is None else clipped).encode("utf-8")
    m = len(sample) or 1
    digits, upper, punct, high, code, maths, frac, dollars, qmarks = sample_stats(sample)
    lines = text.count("\n")
    words = text.count(" ") + lines + 1
    return [
        math.log1p(n) / 10.0,
        math.log1p(words) / 10.0,
        math.log1p(lines) / 5.0,
        digits / m,
        upper / m,
        punct / m,
        min(code, 10) / 10.0,
        min(maths + frac + dollars // 2, 10) / 10.0,
        min(qmarks, 5) / 5.0,
        high / m,
        1.0,
    ]


def featurize(text: str) -> Features:
    """Features of one prompt; sparse values are log-scaled counts, L2-normalized.

    One C call (``engine._featurize.features``) does what ``sparse_counts`` and
    ``dense_features`` describe plus the scaling: equal indices and dense vector, values within a
    few float32 ulps of numpy's (the norm is summed in another order); see tests/unit/test_features.py.
    """
    out = features_ascii(text, HASH_BITS, HEAD_CHARS, TAIL_CHARS)
    if out is None:  # not pure ASCII: clip, lower-case and encode here
        clipped = clip_text(text)
        out = features(
            clipped.lower().encode("utf-8"),
            clipped.encode("utf-8"),
            HASH_BITS,
            len(text),
            text.count(" "),
            text.count("\n"),
        )
    idx, val, dense = out
    return Features(
        np.frombuffer(idx, dtype=np.int64),
        np.frombuffer(val, dtype=np.float32),
        np.frombuffer(dense, dtype=np.float32),
    )


def featurize_reference(text: str) -> Features:
    """``featurize`` spelled out with numpy over ``sparse_counts`` and ``dense_features``."""
    clipped = clip_text(text)
    idx, counts = sparse_counts(text, clipped)
    dense = np.asarray(dense_features(text, clipped), dtype=np.float32)
    if idx.size == 0:
        return Features(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.float32), dense)
    val = np.log1p(counts)
    val /= np.float32(np.sqrt(np.dot(val, val)))
    return Features(idx, val, dense)
