"""The featurizer: the C hashing equals a plain-Python reference of the same definition."""

from __future__ import annotations

import math
import random
import re
import zlib
from collections import Counter

import numpy as np
import pytest

from engine import features
from engine.features import DENSE_DIM, HASH_SIZE, clip_text, featurize, sparse_counts

_TOKEN = re.compile(rb"[a-z]+|\d+|[\x80-\xff]+|[^\sa-z\d\x80-\xff]")
_MATH_HINT = re.compile(rb"\d ?[-+*/^=] ?\d")
_CODE_MARKERS = (
    b"```",
    b"def ",
    b"class ",
    b"return",
    b";\n",
    b"{\n",
    b"#include",
    b"=>",
    b"function",
)
_DIGITS = b"0123456789"
_UPPER = bytes(range(65, 91))
_PUNCT = bytes(c for c in range(33, 127) if not chr(c).isalnum())
_HIGH = bytes(range(128, 256))


def _deleted(b: bytes, chars: bytes) -> int:
    return len(b) - len(b.translate(None, chars))


def reference_dense(text: str) -> list[float]:
    """The dense features' definition, written with bytes.count, translate and re.findall."""
    n = len(text) or 1
    sample = clip_text(text).encode("utf-8")
    m = len(sample) or 1
    words = text.count(" ") + text.count("\n") + 1
    code = sum(sample.count(k) for k in _CODE_MARKERS)
    math_hits = len(_MATH_HINT.findall(sample)) + sample.count(b"\\frac") + sample.count(b"$") // 2
    return [
        math.log1p(n) / 10.0,
        math.log1p(words) / 10.0,
        math.log1p(text.count("\n")) / 5.0,
        _deleted(sample, _DIGITS) / m,
        _deleted(sample, _UPPER) / m,
        _deleted(sample, _PUNCT) / m,
        min(code, 10) / 10.0,
        min(math_hits, 10) / 10.0,
        min(sample.count(b"?"), 5) / 5.0,
        _deleted(sample, _HIGH) / m,
        1.0,
    ]


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


def _random_texts() -> list[str]:
    rng = random.Random(11)
    pieces = [
        "1+2",
        "3 * 4",
        "5 = 6",
        "7 -8",
        "$x$",
        "\\frac{1}{2}",
        "```",
        "def ",
        "class ",
        "return",
        ";\n",
        "{\n",
        "#include",
        "=>",
        "function",
        "??",
        "ABC",
        "é",
        "日",
        " ",
        "\n",
        "9",
    ]
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(300)]


@pytest.mark.parametrize("text", TEXTS + _random_texts())
def test_dense_features_equal_reference(text: str) -> None:
    assert features.dense_features(text) == reference_dense(text)


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


@pytest.mark.parametrize("text", TEXTS + _random_texts())
def test_one_pass_featurize_equals_numpy_reference(text: str) -> None:
    """The C one-pass ``featurize``: same buckets and dense vector as the reference, values
    within one float32 ulp (the L2 norm is summed in another order)."""
    got, ref = featurize(text), features.featurize_reference(text)
    assert got.indices.tolist() == ref.indices.tolist()
    assert got.dense.tolist() == ref.dense.tolist()
    assert got.values.dtype == np.float32
    np.testing.assert_array_max_ulp(got.values, ref.values, maxulp=4)


@pytest.mark.parametrize(
    "text",
    [
        "Mixed CASE words, 12 digits; and\nnew lines\n",
        "B" * 3000 + " middle " + "Z" * 700,  # clipped: head + newline + tail
        "x" * (features.HEAD_CHARS + features.TAIL_CHARS),  # exactly at the limit: not clipped
        "",
        " \n ",
    ],
)
def test_ascii_fast_path_equals_the_general_path(text: str) -> None:
    """For ASCII text ``featurize`` clips, lower-cases and counts in C; the result is the one
    the general path gives from the Python-made inputs."""
    from engine._featurize import features as from_bytes

    clipped = clip_text(text)
    idx, val, dense = from_bytes(
        clipped.lower().encode(),
        clipped.encode(),
        features.HASH_BITS,
        len(text),
        text.count(" "),
        text.count("\n"),
    )
    got = featurize(text)
    assert got.indices.tobytes() == idx and got.values.tobytes() == val
    assert got.dense.tobytes() == dense
