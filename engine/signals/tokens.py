"""Input-token count signal: a fast offline estimate of a BPE tokenizer's count.

Exact BPE costs ~150-190 us per 1.6k characters, too slow for the Decide hot path, so the
estimate counts character classes instead and weights them with coefficients fitted by
``modelroute train --only tokens`` against the real tokenizer (``engine/models/tokens.json``).

The counts come from one pass in C (``engine._featurize.class_counts``) over the UTF-8 bytes:
how many bytes of each class (letter, digit, punctuation, space, newline, UTF-8 lead and
continuation bytes, other), how many runs, and per run ``floor(len / k)`` for a few k, so a linear
model can follow how long words split into several tokens.
See ``docs/signals.md`` for the method and its measured error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from engine._tokens import class_counts, class_dot
from engine.signals.base import RequestView
from modelroute.domain import Message

# Tokens a chat API adds per message (role and separators) and once per reply.
PER_MESSAGE_TOKENS = 4
PER_CONVERSATION_TOKENS = 3
DEFAULT_ENCODING = "cl100k_base"
# Prompts longer than this many UTF-8 bytes are estimated from a sample of this size.
SAMPLE_BYTES = 4096
SAMPLE_CHUNKS = 32
MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "tokens.json"


FEATURE_NAMES: tuple[str, ...] = (
    "letters",
    "letter_runs",
    "letters_3",
    "letters_5",
    "letters_7",
    "letters_9",
    "letters_12",
    "upper",
    "lower_to_upper",
    "upper_pairs",
    "digits",
    "digit_runs",
    "digits_3",
    "punct",
    "punct_runs",
    "punct_pairs",
    "spaces",
    "double_spaces",
    "quad_spaces",
    "newlines",
    "blank_lines",
    "other_ws",
    "lead2",
    "lead3",
    "lead4",
    "bias",
)


def sample_bytes(raw: bytes) -> bytes:
    """``raw`` itself when short, else ``SAMPLE_CHUNKS`` evenly spaced slices of it.

    Bounds the cost of a long prompt: the counts of the sample are scaled up by the length
    ratio, which costs a little accuracy on text whose make-up changes along its length.
    """
    if len(raw) <= SAMPLE_BYTES:
        return raw
    size = SAMPLE_BYTES // SAMPLE_CHUNKS
    step = (len(raw) - size) / (SAMPLE_CHUNKS - 1)
    return b"".join(raw[int(i * step) : int(i * step) + size] for i in range(SAMPLE_CHUNKS))


def text_features(text: str) -> list[float]:
    """The class counts the estimator weighs, in the order of ``FEATURE_NAMES``."""
    raw = text.encode("utf-8", "surrogatepass")
    sample = sample_bytes(raw)
    counts = _counts(sample)
    if sample is not raw:
        scale = len(raw) / len(sample)
        counts = [c * scale for c in counts]
    counts.append(1.0)
    return counts


def _counts(raw: bytes) -> list[float]:
    """The 25 class counts of ``FEATURE_NAMES`` (all but the bias), in one C pass."""
    return class_counts(raw)


@cache
def coefficients(encoding: str) -> tuple[float, ...]:
    model = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    if tuple(model["features"]) != FEATURE_NAMES:
        raise ValueError(f"{MODEL_PATH} was fitted for other features; run modelroute train")
    return tuple(float(c) for c in model["encodings"][encoding]["coef"])


def count_text_tokens(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """Estimated token count of ``text`` alone (no chat message overhead)."""
    if not text:
        return 0
    raw = text.encode("utf-8", "surrogatepass")
    sample = sample_bytes(raw)
    scale = len(raw) / len(sample) if sample is not raw else 1.0
    # = sum(c * f for c, f in zip(coef, text_features(text))), in one C call
    return max(1, round(class_dot(sample, coefficients(encoding), scale)))


class TokenCounter:
    """Signal: tokens of the whole conversation, with the per-message overhead of chat APIs."""

    name = "input_tokens"

    def __init__(self, encoding: str = DEFAULT_ENCODING) -> None:
        self.encoding = encoding

    def read(self, req: RequestView) -> int:
        return self.count(req.messages)

    def count(self, messages: Iterable[Message]) -> int:
        total = PER_CONVERSATION_TOKENS
        for m in messages:
            total += PER_MESSAGE_TOKENS + count_text_tokens(m.content, self.encoding)
        return total
