"""The token estimator's class counts in C equal their plain-Python definition."""

from __future__ import annotations

import random

import pytest

from engine._tokens import class_counts
from engine.signals.tokens import FEATURE_NAMES

# The definition, written with bytes.translate and bytes.count (the estimator's first version).


def _table(classes: dict[bytes, bytes], default: bytes) -> bytes:
    out = bytearray(default * 256)
    for chars, cls in classes.items():
        for c in chars:
            out[c] = cls[0]
    return bytes(out)


_LOWER = bytes(range(97, 123))
_UPPER = bytes(range(65, 91))
_DIGIT = b"0123456789"
_PUNCT = bytes(c for c in range(33, 127) if not chr(c).isalnum())
_CONT = bytes(range(0x80, 0xC0))
_LEAD2 = bytes(range(0xC0, 0xE0))
_LEAD3 = bytes(range(0xE0, 0xF0))
_LEAD4 = bytes(range(0xF0, 0x100))
# One class letter per byte: a letter, d digit, p punctuation, s space, n newline, t other
# whitespace/control, c UTF-8 continuation, x/y/z UTF-8 lead bytes of 2/3/4-byte characters.
_CLASSES = _table(
    {
        _LOWER + _UPPER: b"a",
        _DIGIT: b"d",
        _PUNCT: b"p",
        b" ": b"s",
        b"\n": b"n",
        _CONT: b"c",
        _LEAD2: b"x",
        _LEAD3: b"y",
        _LEAD4: b"z",
    },
    b"t",
)
_CASE = _table({_LOWER: b"l", _UPPER: b"u"}, b" ")


def _runs(classes: bytes, cls: bytes) -> int:
    """Number of maximal runs of ``cls`` in ``classes``."""
    return classes.translate(_ISOLATE[cls]).count(b" " + cls) + classes.startswith(cls)


_ISOLATE = {c: _table({c: c}, b" ") for c in (b"a", b"d", b"p")}


def reference_counts(raw: bytes) -> list[int]:
    m = raw.translate(_CLASSES)
    case = raw.translate(_CASE)
    return [
        m.count(b"a"),
        _runs(m, b"a"),
        m.count(b"aaa"),
        m.count(b"aaaaa"),
        m.count(b"aaaaaaa"),
        m.count(b"aaaaaaaaa"),
        m.count(b"aaaaaaaaaaaa"),
        case.count(b"u"),
        case.count(b"lu"),
        case.count(b"uu"),
        m.count(b"d"),
        _runs(m, b"d"),
        m.count(b"ddd"),
        m.count(b"p"),
        _runs(m, b"p"),
        m.count(b"pp"),
        m.count(b"s"),
        m.count(b"ss"),
        m.count(b"ssss"),
        m.count(b"n"),
        m.count(b"nn"),
        m.count(b"t"),
        m.count(b"x"),
        m.count(b"y"),
        m.count(b"z"),
    ]


def _texts() -> list[str]:
    rng = random.Random(7)
    alphabet = "aAzZ09 \n\t\r.,!?-éß日本😀\x00\x7f"
    fixed = [
        "",
        "Hello, World! It's 2026-11-28; the CEO's API-key is NOT here.\n\n\n  x",
        "camelCaseWords AND UPPER lower MiXeD\tTabs\r\nCRLF",
        "Übersetze: «Guten Morgen» → 日本語のテキスト 😀😀",
        "a" * 50 + "B" * 9 + " " * 13 + "\n" * 5 + "1234567" + "!!!??",
    ]
    return fixed + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(400)
    ]


@pytest.mark.parametrize("text", _texts())
def test_c_counts_equal_the_definition(text: str) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    assert class_counts(raw) == [float(x) for x in reference_counts(raw)]


def test_one_count_per_feature_but_the_bias() -> None:
    assert len(class_counts(b"abc")) == len(FEATURE_NAMES) - 1
