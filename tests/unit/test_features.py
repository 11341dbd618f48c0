"""The featurizer: the C hashing equals a plain-Python reference of the same definition."""

from __future__ import annotations

import re
import zlib
from collections import Counter

import numpy as np
import pytest

from engine import features
from engine.features import DENSE_DIM, HASH_SIZE, clip_text, featurize, sparse_counts

_TOKEN = re.compile(rb"[a-z]+|\d+|[\x80-\xff]+|[^\sa-z\d\x80-\xff]")


def reference_counts(text: str) -> dict[int, float]:
    """The definition, written plainly: crc32 unigrams, chained-crc32 bigrams, masked, counted."""
    toks = _TOKEN.findall(clip_text(text).lower().encode("utf-8"))
    uni = [zlib.crc32(t) for t in toks]
    hashes = [h & (HASH_SIZE - 1) for h in uni]
    hashes += [zlib.crc32(t, u) & (HASH_SIZE - 1) for t, u in zip(toks[1:], uni, strict=False)]
    return {k: float(v) for k, v in Counter(hashes).items()}


TEXTS = [
    "What is 2+2?",
    "Natalia sold clips to 48 of her friends in April, and then half as many in May.",
    "def f(x):\n    return x ** 2  # square\n\tprint(f(3));",
    "Übersetze bitte: «Guten Morgen» → 'good morning'. 日本語のテキスト、絵文字 😀!",
    "a" * 5000 + " tail words 123",
    "MiXeD CaSe WORDS and\x00control\x1fbytes\x7f~`!@#$%^&*()",
    "   \n\t  ",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_c_hashing_equals_reference(text: str) -> None:
    idx, cnt = sparse_counts(text)
    assert dict(zip(idx.tolist(), cnt.tolist(), strict=True)) == reference_counts(text)


def test_features_are_normalized_and_bounded() -> None:
    f = featurize(TEXTS[1])
    assert f.dense.shape == (DENSE_DIM,) and f.indices.dtype == np.int64
    assert f.indices.min() >= 0 and f.indices.max() < HASH_SIZE
    assert float(np.dot(f.values, f.values)) == pytest.approx(1.0, rel=1e-5)


def test_empty_text_has_one_zero_feature() -> None:
    f = featurize("")
    assert f.indices.tolist() == [0] and f.values.tolist() == [0.0]


def test_long_text_is_clipped_but_length_still_counts() -> None:
    short, long = "word " * 100, "word " * 100_000
    assert len(clip_text(long)) == features.HEAD_CHARS + features.TAIL_CHARS + 1
    assert featurize(long).dense[0] > featurize(short).dense[0]
