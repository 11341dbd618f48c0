"""The policy file is validated at load: unknown keys and dangling references are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelroute.config import DEFAULT_CONFIG_PATH, load_config, parse_config
from modelroute.errors import ConfigError

BASE = DEFAULT_CONFIG_PATH.read_text()


def _bad(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(text.encode())
    return e.value.message


def test_embedded_default_loads_with_version_and_hash() -> None:
    cfg = load_config()
    assert cfg.version and len(cfg.content_hash) == 16
    assert cfg.default_tier in cfg.tiers
    assert load_config(DEFAULT_CONFIG_PATH).content_hash == cfg.content_hash


def test_hash_changes_with_content() -> None:
    a = parse_config(BASE.encode())
    b = parse_config((BASE + "\n# a comment\n").encode())
    assert a.content_hash != b.content_hash


def test_unknown_top_level_key() -> None:
    assert _bad(BASE + "\n[surprise]\nx = 1\n") == "config.surprise: unknown key"


def test_unknown_key_in_tier_is_named() -> None:
    msg = _bad(BASE.replace("[tiers.free]\n", "[tiers.free]\nlatency_sla = 5\n"))
    assert msg == "tiers.free.latency_sla: unknown key"


def test_dangling_model_reference_in_tier() -> None:
    msg = _bad(
        BASE.replace('allowed_models = ["mistralai/mixtral-8x7b-chat"', 'allowed_models = ["nope"')
    )
    assert msg.startswith("tiers.free.allowed_models[0]: unknown model 'nope'")


def test_dangling_provider_and_tier_and_chain() -> None:
    assert "unknown provider 'ghost'" in _bad(
        BASE.replace('provider = "simulator"', 'provider = "ghost"', 1)
    )
    assert "tenants.demo.tier: unknown tier" in _bad(
        BASE.replace('[tenants.demo]\ntier = "standard"', '[tenants.demo]\ntier = "gold"')
    )
    assert "tiers.standard.chain: unknown chain" in _bad(
        BASE.replace('chain = "default"', 'chain = "x"', 1)
    )


def test_wrong_types_and_values() -> None:
    assert "expected int" in _bad(BASE.replace("latency_sla_ms = 1500", 'latency_sla_ms = "fast"'))
    assert "must be > 0" in _bad(BASE.replace("max_cost_usd = 0.01", "max_cost_usd = -1"))
    assert "unknown value 'sometimes'" in _bad(
        BASE.replace('streaming_mode = "restart"', 'streaming_mode = "sometimes"', 1)
    )
    assert "not valid TOML" in _bad("[policy\n")


def test_missing_ability_for_a_task_is_named() -> None:
    msg = _bad(BASE.replace("code = 0.92\n", "", 1))
    assert msg.endswith(".ability.code: missing required key")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")


def test_engine_linear_kernel_is_validated() -> None:
    assert parse_config(BASE.encode()).linear_kernel == "native"
    ok = parse_config((BASE + '\n[engine]\nlinear_kernel = "onnxruntime"\n').encode())
    assert ok.linear_kernel == "onnxruntime"
    with pytest.raises(ConfigError, match=r"engine\.linear_kernel: expected one of native"):
        parse_config((BASE + '\n[engine]\nlinear_kernel = "gpu"\n').encode())
    with pytest.raises(ConfigError, match=r"engine\.threads"):
        parse_config((BASE + "\n[engine]\nthreads = 2\n").encode())


def test_admin_token_env_is_a_variable_name() -> None:
    ok = parse_config((BASE + '\n[admin]\ntoken_env = "MY_ADMIN_TOKEN"\n').encode())
    assert ok.admin_token_env == "MY_ADMIN_TOKEN"
    assert parse_config(BASE.encode()).admin_token_env is None
    with pytest.raises(ConfigError, match=r"admin\.token_env"):
        parse_config((BASE + '\n[admin]\ntoken_env = "not a name"\n').encode())
    with pytest.raises(ConfigError, match=r"admin\.token"):
        parse_config((BASE + '\n[admin]\ntoken = "literal-secret"\n').encode())


def test_engine_chat_route_is_validated() -> None:
    assert parse_config(BASE.encode()).chat_route is True
    off = parse_config((BASE + "\n[engine]\nchat_route = false\nnative_decide = true\n").encode())
    assert off.chat_route is False and off.native_decide is True
    with pytest.raises(ConfigError, match=r"engine\.chat_route: expected bool, got int"):
        parse_config((BASE + "\n[engine]\nchat_route = 0\n").encode())


def test_engine_pair_links_is_validated_and_off_by_default() -> None:
    assert parse_config(BASE.encode()).pair_links is False
    on = parse_config((BASE + "\n[engine]\npair_links = true\n").encode())
    assert on.pair_links is True and on.chat_route is True
    with pytest.raises(ConfigError, match=r"engine\.pair_links: expected bool, got str"):
        parse_config((BASE + '\n[engine]\npair_links = "yes"\n').encode())


def test_engine_native_decide_is_validated() -> None:
    assert parse_config(BASE.encode()).native_decide is True
    off = parse_config((BASE + "\n[engine]\nnative_decide = false\n").encode())
    assert off.native_decide is False
    with pytest.raises(ConfigError, match=r"engine\.native_decide: expected bool, got str"):
        parse_config((BASE + '\n[engine]\nnative_decide = "no"\n').encode())
    with pytest.raises(ConfigError, match=r"native_decid"):
        parse_config((BASE + "\n[engine]\nnative_decid = false\n").encode())
