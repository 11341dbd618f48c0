"""A direct encoder of ``Decision`` to protobuf wire bytes, for the engine's hot path.

Building the ``modelroute.v1.Decision`` message field by field and serializing it costs more
than the decision itself (a plan carries every candidate model with its signals). This module
writes the same wire format straight from the domain object, with the per-model parts (model
references, the static part of each hop) serialized once and reused. The result parses to a
message equal to ``wire.decision_to_pb(d)`` (the tests check it on many decisions); field
numbers follow ``proto/modelroute/v1/engine.proto`` and ``common.proto``.

Proto3 rules: an implicit-presence scalar holding its zero value may be written or omitted
(parsers read both as the same message); strings and small integers are omitted when zero, and
each candidate's numbers are written as one fixed-layout block. The ``optional`` cascade is
written whenever present. Floats are IEEE single, doubles double, little-endian.
"""

from __future__ import annotations

import functools
import struct

from engine._wire import encode_candidates
from modelroute.domain import Budget, Candidate, Cascade, Decision, Hop, ModelRef, Signals
from modelroute.wire import _hop_static

_pack_d = struct.Struct("<d").pack
_pack_f = struct.Struct("<f").pack
_FLOAT_MAX = 3.4028234663852886e38
_SMALL = [bytes([i]) for i in range(128)]


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _f32(x: float) -> bytes:
    if -_FLOAT_MAX <= x <= _FLOAT_MAX or x != x:
        return _pack_f(x)
    return _pack_f(float("inf") if x > 0 else float("-inf"))


def _len_field(tag: bytes, body: bytes) -> bytes:
    return tag + _varint(len(body)) + body


def _str_field(tag: bytes, s: str) -> bytes:
    if not s:
        return b""
    b = s.encode("utf-8")
    return tag + _varint(len(b)) + b


def _uint_field(tag: bytes, n: int) -> bytes:
    return tag + _varint(n) if n else b""


@functools.lru_cache(maxsize=1024)
def _model_ref(m: ModelRef) -> bytes:
    """A ModelRef message body: provider = 1, name = 2."""
    return _str_field(b"\x0a", m.provider) + _str_field(b"\x12", m.name)


# Per-object caches keyed by id() (the plan reuses the config's ModelRef and error-policy
# objects; hashing those dataclasses on every call costs more than encoding them): each entry
# keeps its key object, so an id is only trusted while that very object is alive and matches.
_REF_FIELD: dict[int, tuple[ModelRef, bytes]] = {}
_HOP_STATIC: dict[tuple[int, int, int, int, bool], tuple[Hop, bytes]] = {}
_CACHE_MAX = 4096


def _candidate_model(m: ModelRef) -> bytes:
    hit = _REF_FIELD.get(id(m))
    if hit is not None and hit[0] is m:
        return hit[1]
    if len(_REF_FIELD) > _CACHE_MAX:
        _REF_FIELD.clear()
    b = _len_field(b"\x0a", _model_ref(m))
    _REF_FIELD[id(m)] = (m, b)
    return b


def _hop_static_bytes(h: Hop) -> bytes:
    key = (
        id(h.model),
        id(h.on_error),
        h.context_window,
        h.typical_ttft_ms,
        h.supports_continuation,
    )
    hit = _HOP_STATIC.get(key)
    if hit is not None and hit[0].model is h.model and hit[0].on_error is h.on_error:
        return hit[1]
    if len(_HOP_STATIC) > _CACHE_MAX:
        _HOP_STATIC.clear()
    b = _hop_static(
        h.model, h.on_error, h.context_window, h.typical_ttft_ms, h.supports_continuation
    )
    _HOP_STATIC[key] = (h, b)
    return b


_candidate_numbers = struct.Struct("<BdBfBfB?").pack


def _candidate(c: Candidate) -> bytes:
    """Candidate: model = 1, estimated_cost_usd = 2 (double), predicted_quality = 3 (float),
    score = 4 (float), eligible = 5, excluded_reason = 6; wrapped as Signals.candidates = 8."""
    try:
        numbers = _candidate_numbers(
            0x11, c.estimated_cost_usd, 0x1D, c.predicted_quality, 0x25, c.score, 0x28, c.eligible
        )
    except OverflowError:  # a float beyond single precision: written as infinity
        numbers = b"\x11" + _pack_d(c.estimated_cost_usd) + b"\x1d" + _f32(c.predicted_quality)
        numbers += b"\x25" + _f32(c.score) + (b"\x28\x01" if c.eligible else b"")
    body = _candidate_model(c.model) + numbers
    if c.excluded_reason:
        body += _str_field(b"\x32", c.excluded_reason)
    n = len(body)
    return b"\x42" + (_SMALL[n] if n < 0x80 else _varint(n)) + body


# The (refs, fields) table the C encoder matches candidates against, rebuilt when a decision
# names models it does not hold (first use, or a new policy).
_TABLE: tuple[tuple[ModelRef, ...], tuple[bytes, ...]] = ((), ())


def _candidates(cands: tuple[Candidate, ...]) -> bytes:
    """Every candidate's field, by ``engine._wire.encode_candidates`` (the per-candidate work
    of ``_candidate`` in one C pass)."""
    global _TABLE
    refs, fields = _TABLE
    out = encode_candidates(cands, refs, fields)
    if out is None:
        refs = tuple(c.model for c in cands)
        fields = tuple(_candidate_model(m) for m in refs)
        _TABLE = (refs, fields)
        out = encode_candidates(cands, refs, fields)
    return out if out is not None else b"".join(_candidate(c) for c in cands)


def _signals(s: Signals) -> bytes:
    """Signals: task = 1, task_confidence = 2, difficulty = 3, input_tokens = 4, tier = 5,
    tenant = 6, latency_sla_ms = 7, candidates = 8, task_from_hint = 9."""
    parts = [_uint_field(b"\x08", int(s.task))]
    if s.task_confidence:
        parts.append(b"\x15" + _f32(s.task_confidence))
    if s.difficulty:
        parts.append(b"\x1d" + _f32(s.difficulty))
    parts.append(_uint_field(b"\x20", s.input_tokens))
    parts.append(_str_field(b"\x2a", s.tier))
    parts.append(_str_field(b"\x32", s.tenant))
    parts.append(_uint_field(b"\x38", s.latency_sla_ms))
    parts.append(_candidates(s.candidates))
    if s.task_from_hint:
        parts.append(b"\x48\x01")
    return b"".join(parts)


def _hop(h: Hop) -> bytes:
    """Hop: index = 1, the static part (model = 2, on_error = 3, context_window = 6,
    typical_ttft_ms = 7, supports_continuation = 8), max_output_tokens = 4,
    estimated_cost_usd = 5 (double)."""
    body = _uint_field(b"\x08", h.index) + _hop_static_bytes(h)
    body += _uint_field(b"\x20", h.max_output_tokens)
    if h.estimated_cost_usd:
        body += b"\x29" + _pack_d(h.estimated_cost_usd)
    return _len_field(b"\x3a", body)


def _budget(b: Budget) -> bytes:
    body = _uint_field(b"\x08", b.max_input_tokens) + _uint_field(b"\x10", b.max_output_tokens)
    if b.max_cost_usd:
        body += b"\x19" + _pack_d(b.max_cost_usd)
    body += _uint_field(b"\x20", b.ttft_deadline_ms) + _uint_field(b"\x28", b.total_deadline_ms)
    return _len_field(b"\x32", body)


def _cascade(c: Cascade) -> bytes:
    body = _uint_field(b"\x08", c.first_hop)
    if c.escalate_below:
        body += b"\x15" + _f32(c.escalate_below)
    body += _str_field(b"\x1a", c.verifier)
    return _len_field(b"\x72", body)


def decision_bytes(d: Decision) -> bytes:
    """The serialized ``modelroute.v1.Decision`` of ``d``."""
    parts = [
        _str_field(b"\x0a", d.decision_id),
        _str_field(b"\x12", d.request_id),
        _str_field(b"\x1a", d.policy_version),
        _str_field(b"\x22", d.policy_hash),
        _len_field(b"\x2a", _model_ref(d.model)),
        _budget(d.budget),
        *[_hop(h) for h in d.chain],
        _len_field(b"\x42", _signals(d.signals)),
        _str_field(b"\x4a", d.reason),
        _uint_field(b"\x50", d.decision_time_us),
        _uint_field(b"\x58", int(d.streaming_mode)),
        _str_field(b"\x62", d.tenant),
        _str_field(b"\x6a", d.tier),
    ]
    if d.cascade is not None:
        parts.append(_cascade(d.cascade))
    return b"".join(parts)
