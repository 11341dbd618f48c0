"""Request validation for Decide: every problem is an InvalidInput naming the field."""

from __future__ import annotations

import math

from modelroute.config import Config
from modelroute.domain import DecideInput
from modelroute.errors import InvalidInput

MAX_OUTPUT_TOKENS_LIMIT = 1_000_000
MAX_SLA_MS = 3_600_000
MAX_COST_USD = 10_000.0
MAX_METADATA_ENTRIES = 64
MAX_ID_CHARS = 256


def validate_request(inp: DecideInput, cfg: Config) -> None:
    """Reject what cannot be decided on; the context-window check needs tokens and is the policy's."""
    if not inp.messages:
        raise InvalidInput("messages", "at least one message is required")
    total = 0
    for i, m in enumerate(inp.messages):
        if not m.content or m.content.isspace():  # = not m.content.strip(), without a copy
            raise InvalidInput(f"messages[{i}].content", "must not be empty")
        total += len(m.content)
    if total > cfg.max_prompt_chars:
        raise InvalidInput(
            "messages",
            f"prompt has {total} characters, more than the limit of {cfg.max_prompt_chars}",
        )
    if len(inp.request_id) > MAX_ID_CHARS:
        raise InvalidInput("request_id", f"longer than {MAX_ID_CHARS} characters")
    if (inp.tier and inp.tier not in cfg.tiers) or cfg.enforce_tenants:
        _validate_tier_tenant(inp, cfg)
    if (
        inp.max_output_tokens is not None
        and not 0 < inp.max_output_tokens <= MAX_OUTPUT_TOKENS_LIMIT
    ):
        raise InvalidInput("max_output_tokens", f"must be in 1..{MAX_OUTPUT_TOKENS_LIMIT}")
    ov = inp.overrides
    if ov.latency_sla_ms is not None or ov.max_cost_usd is not None or ov.allowed_models:
        _validate_overrides(inp, cfg)
    if len(inp.metadata) > MAX_METADATA_ENTRIES:
        raise InvalidInput("metadata", f"at most {MAX_METADATA_ENTRIES} entries")


def _validate_tier_tenant(inp: DecideInput, cfg: Config) -> None:
    if inp.tier and inp.tier not in cfg.tiers:
        raise InvalidInput(
            "tier", f"unknown tier {inp.tier!r} (known: {', '.join(sorted(cfg.tiers))})"
        )
    if cfg.enforce_tenants:
        if not inp.tenant:
            raise InvalidInput("tenant", "required by this policy")
        if inp.tenant not in cfg.tenants:
            raise InvalidInput("tenant", f"unknown tenant {inp.tenant!r}")


def _validate_overrides(inp: DecideInput, cfg: Config) -> None:
    ov = inp.overrides
    if ov.latency_sla_ms is not None and not 0 < ov.latency_sla_ms <= MAX_SLA_MS:
        raise InvalidInput("overrides.latency_sla_ms", f"must be in 1..{MAX_SLA_MS}")
    if ov.max_cost_usd is not None and (
        not math.isfinite(ov.max_cost_usd) or not 0 < ov.max_cost_usd <= MAX_COST_USD
    ):
        raise InvalidInput("overrides.max_cost_usd", f"must be > 0 and <= {MAX_COST_USD:g}")
    for j, name in enumerate(ov.allowed_models):
        if name not in cfg.models:
            raise InvalidInput(f"overrides.allowed_models[{j}]", f"unknown model {name!r}")
