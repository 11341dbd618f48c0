"""The common Decide in one native call: raw ``DecideRequest`` bytes in, ``Decision`` bytes out.

Inside the server a decision cost 4-5x its tight-loop time: between two requests gRPC's threads
and its Python layer evict the code and data of the ~15 small Python steps between the C kernels
(see ``docs/engine.md``). ``engine._fastpath.FastPath`` makes those steps in C: it reads the
request's wire bytes, validates them, reads the default signals, plans without a cascade, builds
the ``Decision`` and writes its bytes, calling the same kernels through the same entry points as
the Python path, with the same constants (this module hands them over).

It serves only the common case and answers None for anything else (a request the Python path
would reject, a non-ASCII string other than a message's content, a tier with a cascade or the
slow-path router, no eligible model, and the like: see ``engine/_fastpath.c``);
the servicer then takes the Python path, which also raises the field-naming errors.
``FastPath`` exists only for the default signal composition (``Engine.fused``);
``tests/unit/test_fastpath.py`` holds both paths equal.
"""

from __future__ import annotations

from typing import Any

from engine import _fastpath
from engine.features import HASH_BITS, HEAD_CHARS, TAIL_CHARS
from engine.policy import MIN_OUTPUT_RESERVE, NOT_ALLOWED, PREFILL_TOKENS_PER_S
from engine.policy_tables import tables_for
from engine.router.prior import SLOPE
from engine.service import Engine
from engine.signals import tokens
from engine.validate import (
    MAX_COST_USD,
    MAX_ID_CHARS,
    MAX_METADATA_ENTRIES,
    MAX_OUTPUT_TOKENS_LIMIT,
    MAX_SLA_MS,
)
from engine.wire_encode import model_field, model_ref_body
from modelroute.domain import TaskType
from modelroute.wire import _hop_static


def _tiers(engine: Engine) -> dict[str, tuple[object, ...]]:
    """Per tier: name, allowed models (one byte per model row), declared fallback indexes, latency
    SLA, max cost, cost weight, default output tokens, max hops, total deadline, streaming mode,
    and whether the fast path may plan it (no cascade, no slow-path router the engine would
    call, and not a tier that weighs the pair alone, on the pair's links)."""
    tables = tables_for(engine.cfg)
    out: dict[str, tuple[object, ...]] = {}
    for name, row in tables.tiers.items():
        t = row.tier
        slow = t.slow_router_above_usd is not None and engine.has_slow_router
        out[name] = (
            t.name,
            bytes(m.name in row.allowed for m in tables.models),
            row.declared_idx,
            t.latency_sla_ms,
            t.max_cost_usd,
            t.cost_weight,
            t.default_max_output_tokens,
            t.max_hops,
            t.total_deadline_ms,
            t.streaming_mode,
            not t.cascade and not slow and not engine.tier_takes_the_pair_router(name),
        )
    return out


def fast_path(engine: Engine) -> _fastpath.FastPath | None:
    """The native Decide of ``engine``, or None when its signals are not the default ones read
    flat or its policy has more models than the native path holds (the Python path decides)."""
    flat = engine.fused_signals
    cfg, tables = engine.cfg, tables_for(engine.cfg)
    if (
        flat is None
        or len(tables.models) > _fastpath.MAX_MODELS
        or len(flat.router.link_names) > _fastpath.MAX_LINKS
    ):
        return None
    k, r = flat.kernel, flat.router
    links = {name: i for i, name in enumerate(r.link_names)}
    task_rows: list[object] = [None]
    for t in TaskType:
        slot, head, family = r.head[t]
        mean, std = r.stats.heads[head]
        kn = r.route.knobs(family)
        policy = tables.tasks[t]
        task_rows.append(
            (t, t.label, slot, mean, std, policy.expected_output_tokens, policy.sensitivity,
             tables.prior_logits[t], kn.difficulty_weight, kn.length_weight, kn.offset,
             kn.length_low, kn.length_high)
        )  # fmt: skip
    spec: dict[str, Any] = {
        "table": k.table,
        "k": k.k,
        "mask": k.mask,
        "base": k.base,
        "bias": k.bias,
        "spec": k.spec,
        "hash_bits": HASH_BITS,
        "head_chars": HEAD_CHARS,
        "tail_chars": TAIL_CHARS,
        "class_task": tuple(int(t) for t in flat.classes),
        "tasks": tuple(task_rows),
        "link_names": r.link_names,
        "link_a": r.link_a,
        "link_b": r.link_b,
        "link_c": r.link_c,
        "coef": tokens.coefficients(flat.encoding),
        "tiers": _tiers(engine),
        "tenant_tier": {name: t.tier for name, t in cfg.tenants.items()},
        "default_tier": cfg.default_tier,
        "rows": tables.models,
        "row_links": tuple(links.get(m.router_key, -1) for m in tables.models),
        # which requests' narrowed models weigh the pair alone (they take the Python path)
        "row_footing": b""
        if engine.pair_footing is None
        else bytes(engine.pair_footing.role(m.name) for m in tables.models),
        # the serialized parts the Python path's encoder writes for each model
        "candidate_fields": tuple(model_field(m.ref) for m in tables.models),
        "hop_statics": tuple(
            _hop_static(
                m.ref, cfg.error_actions, m.context_window, m.ttft_ms, m.supports_continuation
            )
            for m in tables.models
        ),
        "model_bodies": tuple(model_ref_body(m.ref) for m in tables.models),
        "not_allowed": NOT_ALLOWED,
        "version": cfg.version,
        "content_hash": cfg.content_hash,
        "task_slot": flat.task_slot,
        "difficulty_slot": flat.difficulty_slot,
        "length_offset": flat.length_offset,
        "per_conversation_tokens": tokens.PER_CONVERSATION_TOKENS,
        "per_message_tokens": tokens.PER_MESSAGE_TOKENS,
        "sample_bytes": tokens.SAMPLE_BYTES,
        "sample_chunks": tokens.SAMPLE_CHUNKS,
        "max_prompt_chars": cfg.max_prompt_chars,
        "enforce_tenants": int(cfg.enforce_tenants),
        "max_output_tokens_limit": MAX_OUTPUT_TOKENS_LIMIT,
        "max_id_chars": MAX_ID_CHARS,
        "max_metadata_entries": MAX_METADATA_ENTRIES,
        "min_output_reserve": MIN_OUTPUT_RESERVE,
        "max_sla_ms": MAX_SLA_MS,
        "max_cost_usd": MAX_COST_USD,
        "length_mean": r.stats.length[0],
        "length_std": r.stats.length[1],
        "prefill_tokens_per_s": PREFILL_TOKENS_PER_S,
        "slope": SLOPE,
    }
    return _fastpath.FastPath(spec)
