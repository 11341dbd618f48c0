"""Cost budgets: prices per model, token estimates, and the max_tokens a budget allows.

Until a provider reports usage, tokens are estimated; once it does, its numbers replace the
estimate. The prompt (once per attempt) is counted with the engine's fitted estimator
(``engine.signals.tokens``) plus the chat overhead per message. Streamed chunks, the hot path,
use about four characters per token: the fitted estimator costs ~10 us per call, about half of
the executor's own per-chunk cost, and overcounts one-token chunks. Estimates only decide when
to stop; the ledger keeps the provider's figures whenever it sent them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from engine.signals.tokens import PER_CONVERSATION_TOKENS, PER_MESSAGE_TOKENS, count_text_tokens
from modelroute.config import Config
from modelroute.domain import Message, ModelRef

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Approximate token count of ``text`` (at least 1 for non-empty text)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_prompt_tokens(messages: Iterable[Message], assistant_prefix: str | None) -> int:
    n = PER_CONVERSATION_TOKENS
    n += sum(count_text_tokens(m.content) + PER_MESSAGE_TOKENS for m in messages)
    return n + (count_text_tokens(assistant_prefix) if assistant_prefix else 0)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token."""

    input: float = 0.0
    output: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input + output_tokens * self.output


def price_for(config: Config, model: ModelRef) -> Price:
    """The model's list price from the policy; zero for a model the policy does not know."""
    m = config.models.get(model.name)
    if m is None or m.provider != model.provider:
        return Price()
    return Price(m.input_usd_per_mtok / 1e6, m.output_usd_per_mtok / 1e6)


@dataclass(frozen=True, slots=True)
class Allowance:
    max_tokens: int
    # True when the remaining budget, not a token limit, set max_tokens.
    capped_by_budget: bool


def output_allowance(
    remaining_usd: float, price: Price, input_tokens: int, token_limit: int
) -> Allowance | None:
    """Output tokens affordable after paying for the prompt; None when not even one is."""
    left = remaining_usd - price.cost(input_tokens, 0)
    if left <= 0:
        return None
    if price.output <= 0:
        return Allowance(token_limit, False)
    affordable = int(left / price.output + 1e-9)  # tolerate float rounding at the edge
    if affordable < 1:
        return None
    if affordable < token_limit:
        return Allowance(affordable, True)
    return Allowance(token_limit, False)
