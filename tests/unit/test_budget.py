"""Budget arithmetic: prices from the policy, token estimates, affordable output tokens."""

from __future__ import annotations

from dispatcher.budget import (
    Price,
    estimate_prompt_tokens,
    estimate_tokens,
    output_allowance,
    price_for,
)
from engine.signals.tokens import PER_CONVERSATION_TOKENS, PER_MESSAGE_TOKENS, count_text_tokens
from modelroute.domain import Message, ModelRef, Role
from tests.unit.test_executor_fakes import make_config


def test_price_comes_from_the_policy_and_unknown_models_are_free() -> None:
    cfg = make_config()
    assert price_for(cfg, ModelRef("p1", "alpha")) == Price(1e-6, 2e-6)
    assert price_for(cfg, ModelRef("p2", "alpha")) == Price()  # wrong provider
    assert price_for(cfg, ModelRef("p9", "nope")) == Price()


def test_token_estimates() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2
    msgs = [Message(Role.USER, "What is the capital of France?")]
    text = count_text_tokens(msgs[0].content)
    assert 5 <= text <= 9  # 7 tokens in cl100k
    assert estimate_prompt_tokens(msgs, None) == PER_CONVERSATION_TOKENS + PER_MESSAGE_TOKENS + text
    with_prefix = estimate_prompt_tokens(msgs, "Paris is")
    assert with_prefix == estimate_prompt_tokens(msgs, None) + count_text_tokens("Paris is")


def test_output_allowance() -> None:
    price = Price(1e-6, 2e-6)
    # 10 prompt tokens cost 10e-6; 20e-6 left buys 10 output tokens.
    a = output_allowance(30e-6, price, 10, 100)
    assert a is not None and (a.max_tokens, a.capped_by_budget) == (10, True)
    b = output_allowance(1.0, price, 10, 100)
    assert b is not None and (b.max_tokens, b.capped_by_budget) == (100, False)
    assert output_allowance(10e-6, price, 10, 100) is None  # prompt alone uses it all
    assert output_allowance(11e-6, price, 10, 100) is None  # less than one output token
    free = output_allowance(0.0001, Price(), 10, 100)
    assert free is not None and free.max_tokens == 100
