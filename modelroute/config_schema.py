"""Builds a validated ``Config`` from parsed TOML; every error names the key path."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from modelroute.config import (
    PROTOCOLS,
    ChainConfig,
    Config,
    ModelConfig,
    ProviderConfig,
    TaskPolicy,
    TenantConfig,
    TierConfig,
    check_keys,
)
from modelroute.domain import Action, ErrorClass, ErrorPolicy, ModelRef, StreamingMode, TaskType
from modelroute.errors import ConfigError

T = TypeVar("T")

# Defaults of the error taxonomy: what the dispatcher does per class unless the policy says else.
DEFAULT_ACTIONS: dict[ErrorClass, tuple[Action, int]] = {
    ErrorClass.INVALID_REQUEST: (Action.STOP, 0),
    ErrorClass.CONTEXT_OVERFLOW: (Action.FAIL_OVER_LONGER_CONTEXT, 0),
    ErrorClass.AUTH: (Action.FAIL_OVER, 0),
    ErrorClass.RATE_LIMITED: (Action.RETRY, 2),
    ErrorClass.OVERLOADED: (Action.FAIL_OVER, 0),
    ErrorClass.TIMEOUT: (Action.FAIL_OVER, 0),
    ErrorClass.INTERNAL: (Action.RETRY, 1),
    ErrorClass.CONTENT_POLICY: (Action.STOP, 0),
}


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _get(t: dict[str, Any], key: str, path: str, typ: type[T], default: T | None = None) -> T:
    if key not in t:
        if default is None:
            raise ConfigError(f"{path}.{key}: missing required key")
        return default
    v = t[key]
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise ConfigError(f"{path}.{key}: expected {typ.__name__}, got {type(v).__name__}")
    return v


def _positive(v: T, path: str) -> T:
    if isinstance(v, int | float) and v <= 0:
        raise ConfigError(f"{path}: must be > 0")
    return v


def _str_list(t: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    v = t.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{path}.{key}: expected a list of strings")
    return tuple(v)


def _enum_label(enum_cls: Any, label: str, path: str) -> Any:
    try:
        return enum_cls[label.upper()]
    except KeyError:
        known = ", ".join(e.name.lower() for e in enum_cls)
        raise ConfigError(f"{path}: unknown value {label!r} (known: {known})") from None


def _providers(data: dict[str, Any]) -> dict[str, ProviderConfig]:
    out: dict[str, ProviderConfig] = {}
    for name, t in data.get("providers", {}).items():
        path = f"providers.{name}"
        check_keys(
            t,
            path,
            {"protocol", "base_url"},
            {
                "api_key_env",
                "connect_timeout_ms",
                "stall_timeout_ms",
                "http2",
                "supports_continuation",
            },
        )
        protocol = _get(t, "protocol", path, str)
        if protocol not in PROTOCOLS:
            raise ConfigError(
                f"{path}.protocol: unknown protocol {protocol!r} (known: openai, anthropic)"
            )
        key_env = t.get("api_key_env")
        if key_env is not None and not isinstance(key_env, str):
            raise ConfigError(f"{path}.api_key_env: expected the name of an environment variable")
        out[name] = ProviderConfig(
            name=name,
            protocol=protocol,
            base_url=_get(t, "base_url", path, str).rstrip("/"),
            api_key_env=key_env,
            connect_timeout_ms=_positive(
                _get(t, "connect_timeout_ms", path, int, 2000), f"{path}.connect_timeout_ms"
            ),
            stall_timeout_ms=_positive(
                _get(t, "stall_timeout_ms", path, int, 15000), f"{path}.stall_timeout_ms"
            ),
            http2=_get(t, "http2", path, bool, True),
            supports_continuation=_get(
                t, "supports_continuation", path, bool, protocol == "anthropic"
            ),
        )
    if not out:
        raise ConfigError("providers: at least one provider is required")
    return out


def _ability(t: Any, path: str) -> dict[TaskType, float]:
    if not isinstance(t, dict):
        raise ConfigError(f"{path}: expected a table of task = ability")
    out: dict[TaskType, float] = {}
    for k, v in t.items():
        task = _enum_label(TaskType, k, f"{path}.{k}")
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
            raise ConfigError(f"{path}.{k}: expected a number in [0, 1]")
        out[task] = float(v)
    missing = [t.label for t in TaskType if t not in out]
    if missing:
        raise ConfigError(f"{path}.{missing[0]}: missing required key")
    return out


def _models(data: dict[str, Any], providers: dict[str, ProviderConfig]) -> dict[str, ModelConfig]:
    out: dict[str, ModelConfig] = {}
    models = data.get("models", [])
    if not isinstance(models, list) or not models:
        raise ConfigError("models: expected at least one [[models]] entry")
    for i, t in enumerate(models):
        path = f"models[{i}]"
        check_keys(
            t,
            path,
            {
                "name",
                "provider",
                "input_usd_per_mtok",
                "output_usd_per_mtok",
                "context_window",
                "ability",
            },
            {"max_output_tokens", "ttft_ms", "tokens_per_s", "router_key"},
        )
        name = _get(t, "name", path, str)
        path = f"models[{i}] ({name})"
        if name in out:
            raise ConfigError(f"{path}.name: duplicate model name")
        provider = _get(t, "provider", path, str)
        if provider not in providers:
            raise ConfigError(f"{path}.provider: unknown provider {provider!r}")
        out[name] = ModelConfig(
            name=name,
            provider=provider,
            input_usd_per_mtok=_nonneg(
                _get(t, "input_usd_per_mtok", path, float), f"{path}.input_usd_per_mtok"
            ),
            output_usd_per_mtok=_nonneg(
                _get(t, "output_usd_per_mtok", path, float), f"{path}.output_usd_per_mtok"
            ),
            context_window=_positive(
                _get(t, "context_window", path, int), f"{path}.context_window"
            ),
            max_output_tokens=_positive(
                _get(t, "max_output_tokens", path, int, 4096), f"{path}.max_output_tokens"
            ),
            ttft_ms=_positive(_get(t, "ttft_ms", path, int, 500), f"{path}.ttft_ms"),
            tokens_per_s=_positive(
                _get(t, "tokens_per_s", path, float, 50.0), f"{path}.tokens_per_s"
            ),
            ability=_ability(t["ability"], f"{path}.ability"),
            ref=ModelRef(provider, name),
            router_key=_get(t, "router_key", path, str, name),
        )
    return out


def _nonneg(v: T, path: str) -> T:
    if isinstance(v, int | float) and v < 0:
        raise ConfigError(f"{path}: must be >= 0")
    return v


def _check_models(names: tuple[str, ...], models: dict[str, ModelConfig], path: str) -> None:
    for j, m in enumerate(names):
        if m not in models:
            raise ConfigError(f"{path}[{j}]: unknown model {m!r}")


def _chains(data: dict[str, Any], models: dict[str, ModelConfig]) -> dict[str, ChainConfig]:
    out: dict[str, ChainConfig] = {}
    for name, t in data.get("chains", {}).items():
        path = f"chains.{name}"
        check_keys(t, path, {"models"}, set())
        ms = _str_list(t, "models", path)
        _check_models(ms, models, f"{path}.models")
        out[name] = ChainConfig(name=name, models=ms)
    return out


def _optional_nonneg(t: dict[str, Any], key: str, path: str) -> float | None:
    return _nonneg(_get(t, key, path, float), f"{path}.{key}") if key in t else None


def _tiers(
    data: dict[str, Any], models: dict[str, ModelConfig], chains: dict[str, ChainConfig]
) -> dict[str, TierConfig]:
    out: dict[str, TierConfig] = {}
    for name, t in data.get("tiers", {}).items():
        path = f"tiers.{name}"
        check_keys(
            t,
            path,
            {
                "latency_sla_ms",
                "total_deadline_ms",
                "max_cost_usd",
                "streaming_mode",
                "cost_weight",
            },
            {
                "allowed_models",
                "chain",
                "max_hops",
                "hedge_after_ms",
                "default_max_output_tokens",
                "cascade",
                "slow_router_above_usd",
            },
        )
        allowed = _str_list(t, "allowed_models", path)
        _check_models(allowed, models, f"{path}.allowed_models")
        chain = _get(t, "chain", path, str, "")
        if chain and chain not in chains:
            raise ConfigError(f"{path}.chain: unknown chain {chain!r}")
        sla = _positive(_get(t, "latency_sla_ms", path, int), f"{path}.latency_sla_ms")
        total = _positive(_get(t, "total_deadline_ms", path, int), f"{path}.total_deadline_ms")
        if total < sla:
            raise ConfigError(f"{path}.total_deadline_ms: must be >= latency_sla_ms")
        out[name] = TierConfig(
            name=name,
            latency_sla_ms=sla,
            total_deadline_ms=total,
            max_cost_usd=_positive(_get(t, "max_cost_usd", path, float), f"{path}.max_cost_usd"),
            allowed_models=allowed,
            streaming_mode=_enum_label(
                StreamingMode, _get(t, "streaming_mode", path, str), f"{path}.streaming_mode"
            ),
            cost_weight=_nonneg(_get(t, "cost_weight", path, float), f"{path}.cost_weight"),
            chain=chain,
            max_hops=_positive(_get(t, "max_hops", path, int, 3), f"{path}.max_hops"),
            hedge_after_ms=_nonneg(
                _get(t, "hedge_after_ms", path, int, 0), f"{path}.hedge_after_ms"
            ),
            default_max_output_tokens=_positive(
                _get(t, "default_max_output_tokens", path, int, 1024),
                f"{path}.default_max_output_tokens",
            ),
            cascade=_get(t, "cascade", path, bool, False),
            slow_router_above_usd=_optional_nonneg(t, "slow_router_above_usd", path),
        )
    if not out:
        raise ConfigError("tiers: at least one tier is required")
    return out


def _tenants(data: dict[str, Any], tiers: dict[str, TierConfig]) -> dict[str, TenantConfig]:
    out: dict[str, TenantConfig] = {}
    for name, t in data.get("tenants", {}).items():
        path = f"tenants.{name}"
        check_keys(t, path, {"tier"}, {"spend_limit_usd", "spend_window_s"})
        tier = _get(t, "tier", path, str)
        if tier not in tiers:
            raise ConfigError(f"{path}.tier: unknown tier {tier!r}")
        limit = t.get("spend_limit_usd")
        if limit is not None:
            limit = _positive(_get(t, "spend_limit_usd", path, float), f"{path}.spend_limit_usd")
        out[name] = TenantConfig(
            name=name,
            tier=tier,
            spend_limit_usd=limit,
            spend_window_s=_positive(
                _get(t, "spend_window_s", path, int, 3600), f"{path}.spend_window_s"
            ),
        )
    return out


def _tasks(data: dict[str, Any]) -> dict[TaskType, TaskPolicy]:
    raw = data.get("tasks", {})
    out: dict[TaskType, TaskPolicy] = {}
    for label, t in raw.items():
        path = f"tasks.{label}"
        task = _enum_label(TaskType, label, path)
        check_keys(
            t, path, {"sensitivity"}, {"expected_output_tokens", "cascade", "escalate_below"}
        )
        s = _get(t, "sensitivity", path, float)
        if not 0.0 <= s <= 1.0:
            raise ConfigError(f"{path}.sensitivity: expected a number in [0, 1]")
        below = t.get("escalate_below")
        if below is not None:
            below = _get(t, "escalate_below", path, float)
            if not 0.0 < below < 1.0:
                raise ConfigError(f"{path}.escalate_below: expected a number in (0, 1)")
        out[task] = TaskPolicy(
            task,
            s,
            _positive(_get(t, "expected_output_tokens", path, int, 300), path),
            cascade=_get(t, "cascade", path, bool, False),
            escalate_below=below,
        )
    missing = [t.label for t in TaskType if t not in out]
    if missing:
        raise ConfigError(f"tasks.{missing[0]}: missing required table")
    return out


def _error_actions(data: dict[str, Any]) -> tuple[ErrorPolicy, ...]:
    raw = data.get("error_actions", {})
    if not isinstance(raw, dict):
        raise ConfigError("error_actions: expected a table")
    actions = dict(DEFAULT_ACTIONS)
    for label, t in raw.items():
        path = f"error_actions.{label}"
        ec = _enum_label(ErrorClass, label, path)
        if ec not in DEFAULT_ACTIONS:
            raise ConfigError(f"{path}: not a provider error class")
        check_keys(t, path, {"action"}, {"max_retries"})
        action = _enum_label(Action, _get(t, "action", path, str), f"{path}.action")
        actions[ec] = (action, _nonneg(_get(t, "max_retries", path, int, 0), f"{path}.max_retries"))
    return tuple(ErrorPolicy(ec, a, n) for ec, (a, n) in actions.items())


def build_config(data: dict[str, Any], *, content_hash: str, source: str) -> Config:
    top = check_keys(
        data,
        "config",
        {"policy", "providers", "models", "tiers", "tasks"},
        {"tenants", "chains", "error_actions", "admin", "engine"},
    )
    pol = check_keys(
        top["policy"],
        "policy",
        {"version", "default_tier"},
        {"enforce_tenants", "max_prompt_chars"},
    )
    providers = _providers(top)
    models = _models(top, providers)
    chains = _chains(top, models)
    tiers = _tiers(top, models, chains)
    default_tier = _get(pol, "default_tier", "policy", str)
    if default_tier not in tiers:
        raise ConfigError(f"policy.default_tier: unknown tier {default_tier!r}")
    return Config(
        version=_get(pol, "version", "policy", str),
        content_hash=content_hash,
        default_tier=default_tier,
        enforce_tenants=_get(pol, "enforce_tenants", "policy", bool, False),
        max_prompt_chars=_positive(
            _get(pol, "max_prompt_chars", "policy", int, 2_000_000), "policy.max_prompt_chars"
        ),
        providers=providers,
        models=models,
        tiers=tiers,
        tenants=_tenants(top, tiers),
        chains=chains,
        tasks=_tasks(top),
        error_actions=_error_actions(top),
        admin_token_env=_admin_token_env(top),
        linear_kernel=_linear_kernel(top),
        native_decide=_engine_bool(top, "native_decide"),
        chat_route=_engine_bool(top, "chat_route"),
        pair_links=_engine_bool(top, "pair_links", default=False),
        source=source,
    )


LINEAR_KERNELS = ("native", "onnxruntime")
ENGINE_KEYS = {"linear_kernel", "native_decide", "chat_route", "pair_links"}


def _engine_bool(top: dict[str, Any], key: str, default: bool = True) -> bool:
    """An on/off switch of ``[engine]``."""
    if "engine" not in top:
        return default
    eng = check_keys(top["engine"], "engine", set(), ENGINE_KEYS)
    return _get(eng, key, "engine", bool, default)


def _linear_kernel(top: dict[str, Any]) -> str:
    if "engine" not in top:
        return "native"
    eng = check_keys(top["engine"], "engine", set(), ENGINE_KEYS)
    kernel = _get(eng, "linear_kernel", "engine", str, "native")
    if kernel not in LINEAR_KERNELS:
        raise ConfigError(
            f"engine.linear_kernel: expected one of {', '.join(LINEAR_KERNELS)}, got {kernel!r}"
        )
    return kernel


def _admin_token_env(top: dict[str, Any]) -> str | None:
    if "admin" not in top:
        return None
    admin = check_keys(top["admin"], "admin", set(), {"token_env"})
    name = admin.get("token_env")
    if name is None:
        return None
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        raise ConfigError("admin.token_env: expected the name of an environment variable")
    return name
