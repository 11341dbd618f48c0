"""Input-token count signal: a fast offline estimate of the tokenizer's count.

The estimate counts regex classes of the text (words by length, digits, punctuation, whitespace,
non-ASCII characters) and weights them with coefficients fitted against a real BPE tokenizer.
"""

from __future__ import annotations

import re

from engine.signals.base import RequestView

# Tokens a chat API adds per message (role and separators) and once per conversation.
PER_MESSAGE_TOKENS = 4
PER_CONVERSATION_TOKENS = 3

_WORD = re.compile(r"[A-Za-z]+")
_DIGIT = re.compile(r"\d")
_PUNCT = re.compile(r"[^\w\s]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def count_text_tokens(text: str) -> int:
    """Estimated token count of ``text`` (no message overhead)."""
    if not text:
        return 0
    words = _WORD.findall(text)
    long_extra = sum((len(w) - 1) // 6 for w in words)
    digits = len(_DIGIT.findall(text))
    punct = len(_PUNCT.findall(text))
    non_ascii = len(_NON_ASCII.findall(text))
    est = len(words) + long_extra + (digits + 2) // 3 + punct + non_ascii
    return max(1, est)


class TokenCounter:
    """Signal: tokens of the whole conversation, including per-message overhead."""

    name = "input_tokens"

    def read(self, req: RequestView) -> int:
        total = PER_CONVERSATION_TOKENS
        for m in req.messages:
            total += PER_MESSAGE_TOKENS + count_text_tokens(m.content)
        return total
