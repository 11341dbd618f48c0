"""A direct encoder of ``Decision`` to protobuf wire bytes, for the engine's hot path.

Building the ``modelroute.v1.Decision`` message field by field and serializing it costs more
than the decision itself (a plan carries every candidate model with its signals). The C
extension ``engine._wire`` writes the same wire format straight from the domain object; this
module feeds it the parts that are the same for every decision, serialized once: each model's
reference and the static part of each hop. The result parses to a message equal to
``wire.decision_to_pb(d)`` (the tests check it on many decisions).

Layout (field numbers of ``proto/modelroute/v1/engine.proto`` and ``common.proto``):
Decision: decision_id 1, request_id 2, policy_version 3, policy_hash 4, model 5, budget 6,
chain 7 (repeated Hop), signals 8, reason 9, decision_time_us 10, streaming_mode 11, tenant 12,
tier 13, cascade 14 (optional). Budget: max_input_tokens 1, max_output_tokens 2, max_cost_usd 3
(double), ttft_deadline_ms 4, total_deadline_ms 5. Hop: index 1, model 2, on_error 3,
max_output_tokens 4, estimated_cost_usd 5 (double), context_window 6, typical_ttft_ms 7,
supports_continuation 8. Signals: task 1, task_confidence 2 (float), difficulty 3 (float),
input_tokens 4, tier 5, tenant 6, latency_sla_ms 7, candidates 8 (repeated), task_from_hint 9.
Candidate: model 1, estimated_cost_usd 2 (double), predicted_quality 3 (float), score 4 (float),
eligible 5, excluded_reason 6. Cascade: first_hop 1, escalate_below 2 (float), verifier 3.

Proto3 rules: an implicit-presence scalar holding its zero value may be written or omitted
(parsers read both as the same message); strings and integers are omitted when zero, each
candidate's numbers are always written as one fixed-layout block. The ``optional`` cascade is
written whenever present. Floats are IEEE single (beyond its range: infinity), doubles double,
little-endian.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from engine._wire import encode_decision
from modelroute.domain import Decision, Hop, ModelRef
from modelroute.wire import _hop_static

if TYPE_CHECKING:
    from engine._wire import HopStatics


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _str_field(tag: bytes, s: str) -> bytes:
    b = s.encode("utf-8")
    return tag + _varint(len(b)) + b if b else b""


@functools.lru_cache(maxsize=1024)
def model_ref_body(m: ModelRef) -> bytes:
    """A ModelRef message body: provider = 1, name = 2."""
    return _str_field(b"\x0a", m.provider) + _str_field(b"\x12", m.name)


def model_field(m: ModelRef) -> bytes:
    """A Candidate's ``model = 1`` field of ``m``: tag, length, ModelRef body."""
    body = model_ref_body(m)
    return b"\x0a" + _varint(len(body)) + body


_CACHE_MAX = 4096


class DecisionEncoder:
    """Serialized ``Decision`` bytes, with the parts that repeat across decisions cached.

    The static part of each hop is kept by id(model) and read in C (engine._wire): an entry
    keeps its model and error-policy objects, and serves only a hop holding those very objects
    (and the same numbers), so an id is trusted only while its object is alive. The candidates'
    models and their serialized ``model = 1`` fields are one table matched by identity in C,
    rebuilt when a decision names models it does not hold. Plans made by the engine reuse the
    config's objects, so the table is built once; plans decoded from the wire bring new objects
    every time, so a user of those (the dispatcher) keeps an encoder of its own and leaves the
    engine's tables alone."""

    def __init__(self) -> None:
        self._hops: HopStatics = {}
        self._table: tuple[tuple[ModelRef, ...], tuple[bytes, ...]] = ((), ())
        self._refs: dict[int, tuple[ModelRef, bytes]] = {}

    def _add_hop_statics(self, chain: tuple[Hop, ...]) -> None:
        hops = self._hops
        if len(hops) + len(chain) > _CACHE_MAX:
            hops.clear()
        for h in chain:
            b = _hop_static(
                h.model, h.on_error, h.context_window, h.typical_ttft_ms, h.supports_continuation
            )
            hops[id(h.model)] = (
                h.model,
                h.on_error,
                h.context_window,
                h.typical_ttft_ms,
                h.supports_continuation,
                b,
            )

    def _model_ref_by_id(self, m: ModelRef) -> bytes:
        """``_model_ref(m)`` cached by identity (hashing the dataclass costs more)."""
        hit = self._refs.get(id(m))
        if hit is not None and hit[0] is m:
            return hit[1]
        if len(self._refs) > _CACHE_MAX:
            self._refs.clear()
        b = model_ref_body(m)
        self._refs[id(m)] = (m, b)
        return b

    def encode(self, d: Decision) -> bytes:
        """The serialized ``modelroute.v1.Decision`` of ``d``."""
        model = self._model_ref_by_id(d.model)
        refs, fields = self._table
        out = encode_decision(d, refs, fields, self._hops, model)
        if out is None:  # a hop or a candidate model not seen yet: add them, then encode again
            self._add_hop_statics(d.chain)
            refs = tuple(c.model for c in d.signals.candidates)
            fields = tuple(model_field(m) for m in refs)
            self._table = (refs, fields)
            out = encode_decision(d, refs, fields, self._hops, model)
            if out is None:  # cannot happen: both tables now hold this decision's models
                raise RuntimeError("encoder tables rebuilt but a model is still missing")
        return out


# The engine's encoder: ``decision_bytes(d)`` is the serialized Decision of ``d``.
ENGINE_ENCODER = DecisionEncoder()
decision_bytes = ENGINE_ENCODER.encode
