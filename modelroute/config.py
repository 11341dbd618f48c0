"""The policy file: one TOML file, parsed with tomllib into validated frozen objects.

Unknown keys and dangling references are rejected with ``ConfigError`` naming the key path
(``tiers.free.allowed_models[2]``). Secrets are never in the file: a provider names the
environment variable that holds its key.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelroute.domain import Action, ErrorClass, ErrorPolicy, ModelRef, StreamingMode, TaskType
from modelroute.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "modelroute.toml"
PROTOCOLS = ("openai", "anthropic")


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    protocol: str
    base_url: str
    api_key_env: str | None
    connect_timeout_ms: int
    stall_timeout_ms: int
    http2: bool
    supports_continuation: bool


@dataclass(frozen=True, slots=True)
class ModelConfig:
    name: str
    provider: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    context_window: int
    max_output_tokens: int
    ttft_ms: int
    tokens_per_s: float
    ability: Mapping[TaskType, float]
    router_key: str
    # The model as the wire names it; derived from provider and name at load.
    ref: ModelRef

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1e6


@dataclass(frozen=True, slots=True)
class TierConfig:
    name: str
    latency_sla_ms: int
    total_deadline_ms: int
    max_cost_usd: float
    allowed_models: tuple[str, ...]
    streaming_mode: StreamingMode
    cost_weight: float
    chain: str
    max_hops: int
    hedge_after_ms: int
    default_max_output_tokens: int
    # Whether plans of this tier may use confidence escalation (cheap hop first, verified).
    cascade: bool = False
    # Re-decide with the slow-path router (sentence embeddings, tens of ms) when the fast plan
    # may spend at least this much (USD, its most expensive hop); None: never.
    slow_router_above_usd: float | None = None


@dataclass(frozen=True, slots=True)
class TenantConfig:
    name: str
    tier: str
    spend_limit_usd: float | None
    spend_window_s: int


@dataclass(frozen=True, slots=True)
class ChainConfig:
    name: str
    models: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TaskPolicy:
    """How much a task family's outcome depends on model capability (0..1)."""

    task: TaskType
    sensitivity: float
    expected_output_tokens: int
    # Whether a cascade pays for this task (measured: math and code); escalate_below overrides
    # the verifier's calibrated threshold when set.
    cascade: bool = False
    escalate_below: float | None = None


@dataclass(frozen=True, slots=True)
class Config:
    version: str
    content_hash: str
    default_tier: str
    enforce_tenants: bool
    max_prompt_chars: int
    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, ModelConfig]
    tiers: Mapping[str, TierConfig]
    tenants: Mapping[str, TenantConfig]
    chains: Mapping[str, ChainConfig]
    tasks: Mapping[TaskType, TaskPolicy]
    error_actions: tuple[ErrorPolicy, ...]
    # Environment variable holding the token the Admin service requires (None: no token).
    admin_token_env: str | None = None
    # What evaluates the fused linear ONNX graph of the fast-path models: "native" (a C kernel
    # over the graph's own tensors, checked against onnxruntime at load) or "onnxruntime".
    linear_kernel: str = "native"
    # Whether the engine's servicer decides the common request in one native call
    # (engine.fastpath); False: every request takes the Python path. Both give the same plans.
    native_decide: bool = True
    # Whether tasks judged by preference (open_qa, creative_writing, ...) take the router's chat
    # route family (knobs fitted on GPT-4-judged preferences); False: the shared knobs, as for
    # reasoning (when quality means a correct answer rather than a preferred one).
    chat_route: bool = True
    # Whether every decision takes the RouteLLM pair's links fitted on the pair benchmarks
    # (router.json's pair_link). False: only a decision whose linked candidates are the pair's
    # two does; any other weighs GPT-4-1106 on its level link over its RouterBench and pair rows,
    # on the footing of the other models (docs/router.md, "GPT-4-1106's footing").
    pair_links: bool = False
    source: str = field(default="", compare=False)

    def tier_for(self, tier: str, tenant: str) -> TierConfig:
        """The tier a request runs in: explicit tier, else the tenant's, else the default."""
        if tier:
            return self.tiers[tier]
        t = self.tenants.get(tenant)
        return self.tiers[t.tier if t else self.default_tier]


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a policy file (the embedded default when ``path`` is None)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror}") from None
    return parse_config(raw, source=str(p))


def parse_config(raw: bytes, source: str = "<string>") -> Config:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    from modelroute.config_schema import build_config

    return build_config(data, content_hash=hashlib.sha256(raw).hexdigest()[:16], source=source)


def check_keys(table: Any, path: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    """Return ``table`` as a dict after rejecting unknown and missing keys (named by path)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a table")
    unknown = sorted(set(table) - required - optional)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown key")
    missing = sorted(required - set(table))
    if missing:
        raise ConfigError(f"{path}.{missing[0]}: missing required key")
    return table


__all__ = [
    "PROTOCOLS",
    "Action",
    "ChainConfig",
    "Config",
    "ErrorClass",
    "ModelConfig",
    "ProviderConfig",
    "TaskPolicy",
    "TenantConfig",
    "TierConfig",
    "check_keys",
    "load_config",
    "parse_config",
]
