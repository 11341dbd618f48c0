"""The decision engine: validate, read the signals, apply the policy; no transport code here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from random import getrandbits
from typing import Protocol

from engine._policy import build
from engine.fields import pin_fields
from engine.policy import SignalValues, plan
from engine.policy_tables import allowed_for, tables_for
from engine.router.base import Router, RouterOutput
from engine.signals.base import RequestView, Signal
from engine.signals.fused import FusedSignals
from engine.validate import validate_request
from modelroute.config import Config
from modelroute.domain import DecideInput, Decision, Signals, TaskType


class TaskReading(Protocol):
    @property
    def task(self) -> TaskType: ...

    @property
    def confidence(self) -> float: ...


class TaskSignal(Protocol):
    """The task-type signal: the task family and the classifier's confidence in it."""

    name: str

    def read(self, req: RequestView) -> TaskReading: ...


class SlowRouterLike(Protocol):
    """The slow-path router (``engine.embed.router.SlowRouter``): embeddings, tens of ms."""

    def is_slow(self, task: TaskType) -> bool: ...

    def score_batch(
        self, reqs: Sequence[RequestView], tasks: Sequence[TaskType], pair: bool = False
    ) -> list[RouterOutput]: ...


class PairFooting:
    """Which decisions weigh the pair alone: those whose candidates that the router links (by
    their router key, ``keys``: config name -> router key) are models of the pair only. Such a
    decision takes the pair's links fitted on the pair benchmarks (docs/router.md, "GPT-4-1106's
    footing"); any other, the default links."""

    __slots__ = ("keys", "linked", "pair")

    def __init__(
        self, pair: frozenset[str], linked: frozenset[str], keys: Mapping[str, str]
    ) -> None:
        self.pair = pair
        self.linked = linked
        self.keys = dict(keys)

    def role(self, name: str) -> int:
        """0: the router does not link the model; 1: a model of the pair; 2: another."""
        key = self.keys.get(name, name)
        return 0 if key not in self.linked else 1 if key in self.pair else 2

    def applies(self, names: Iterable[str]) -> bool:
        roles = {self.role(n) for n in names}
        return 1 in roles and 2 not in roles


def _new_id() -> str:
    """A random 128-bit id in hex. Ids only need to be unique, not secret: the ``random``
    module's generator (seeded from the OS at import and again in a forked child) costs a tenth
    of a system call per id."""
    return f"{getrandbits(128):032x}"


class Engine:
    """Turns a ``DecideInput`` into a ``Decision``. Pure CPU work (well under 1 ms); thread-safe.

    ``slow`` (optional) is the slow-path router: ``wants_slow(decision)`` says whether the
    tier's policy asks to re-decide with it, ``decide_slow(inp)`` does (tens of milliseconds:
    callers run it off the event loop, see ``engine.slow_path``)."""

    def __init__(
        self,
        cfg: Config,
        *,
        tokens: Signal[int],
        task: TaskSignal,
        router: Router,
        slow: SlowRouterLike | None = None,
        fuse: bool = True,
        pair_router: Router | None = None,
        footing: PairFooting | None = None,
        all_pair: bool = False,
    ) -> None:
        """``fuse``: read the default signals in one flat step (``engine.signals.fused``) when
        they are the default ones; False always walks the signal objects. ``pair_router``: the
        router on the pair's links, for the decisions ``footing`` says weigh the pair alone;
        ``all_pair``: every decision does (``router`` is on the pair's links already)."""
        self.cfg = cfg
        self._tokens = tokens
        self._task = task
        self._router = router
        self._slow = slow
        self._fused = FusedSignals.of(tokens, task, router) if fuse else None
        self._all_pair = all_pair
        both = footing is not None and pair_router is not None and not all_pair
        self._pair_router = pair_router if both else None
        self._footing = footing if both else None
        self._pair_tiers = frozenset(
            name
            for name, row in tables_for(cfg).tiers.items()
            if self._footing is not None and self._footing.applies(row.allowed)
        )

    @property
    def fused(self) -> bool:
        """Whether the fast path reads its signals in one flat step."""
        return self._fused is not None

    @property
    def fused_signals(self) -> FusedSignals | None:
        """The flat reader of the default signals (None when they are not the default ones)."""
        return self._fused

    @property
    def has_slow_router(self) -> bool:
        return self._slow is not None

    @property
    def pair_footing(self) -> PairFooting | None:
        """Which decisions take the pair router (None: every decision takes the one router)."""
        return self._footing

    def tier_takes_the_pair_router(self, tier: str) -> bool:
        """Whether every decision of ``tier`` (without overrides) weighs the pair alone while
        the engine's own router is on the default links: it takes the pair router (in Python).
        With every decision on the pair links, the engine's own router holds them: False."""
        return tier in self._pair_tiers

    def weighs_the_pair(self, inp: DecideInput) -> bool:
        """Whether this decision's candidates that the router links are the pair's alone."""
        if self._all_pair:
            return True
        if self._footing is None:
            return False
        tier = self.cfg.tier_for(inp.tier, inp.tenant).name
        requested = inp.overrides.allowed_models
        if not requested:
            return tier in self._pair_tiers
        return self._footing.applies(allowed_for(tables_for(self.cfg).tiers[tier], requested))

    def decide(self, inp: DecideInput) -> Decision:
        return self._decide(inp, None, "")

    def wants_slow(self, d: Decision) -> bool:
        """The tier re-decides with the slow router when the plan may spend at least its
        ``slow_router_above_usd`` (and the task is one the slow router judges)."""
        slow = self._slow
        tier = self.cfg.tiers.get(d.tier)
        above = tier.slow_router_above_usd if tier is not None else None
        if slow is None or above is None or not slow.is_slow(d.signals.task):
            return False
        return max(h.estimated_cost_usd for h in d.chain) >= above

    def decide_slow(self, inp: DecideInput) -> Decision:
        """The decision with the slow-path router's difficulty and per-model quality."""
        slow = self._slow
        if slow is None:
            raise RuntimeError("this engine has no slow-path router")

        def score(view: RequestView, task: TaskType) -> RouterOutput:
            # called once the request is validated
            return slow.score_batch([view], [task], self.weighs_the_pair(inp))[0]

        return self._decide(inp, score, "; slow-path router (sentence embeddings)")

    def _signals(
        self, inp: DecideInput, score: Callable[[RequestView, TaskType], RouterOutput]
    ) -> SignalValues:
        """The signals read through their objects."""
        view = RequestView(inp.messages)
        input_tokens = self._tokens.read(view)
        if inp.task_hint is not None:
            task, confidence = inp.task_hint, 1.0
        else:
            reading = self._task.read(view)
            task, confidence = reading.task, reading.confidence
        routed = score(view, task)
        return SignalValues(task, confidence, routed.difficulty, input_tokens, routed.quality)

    def _decide(
        self,
        inp: DecideInput,
        score: Callable[[RequestView, TaskType], RouterOutput] | None,
        note: str,
    ) -> Decision:
        """``score`` None: the fast router (read flat when fused)."""
        t0 = time.perf_counter_ns()
        cfg = self.cfg
        validate_request(inp, cfg)
        if score is not None:
            sig = self._signals(inp, score)
        elif self._pair_router is not None and self.weighs_the_pair(inp):
            sig = self._signals(inp, self._pair_router.score)
        elif self._fused is not None:
            sig = self._fused.read(inp)
        else:
            sig = self._signals(inp, self._router.score)
        p = plan(cfg, inp, sig)
        tier = p.tier
        # Built field by field in C (engine._policy.build: no frozen-dataclass __init__ on the
        # hot path); positional, in the field order that DECISION_FIELDS / SIGNALS_FIELDS pin.
        signals = build(
            Signals,
            (
                sig.task,
                sig.task_confidence,
                sig.difficulty,
                sig.input_tokens,
                tier.name,
                inp.tenant,
                p.latency_sla_ms,
                p.candidates,
                inp.task_hint is not None,
            ),
        )
        return build(
            Decision,
            (
                _new_id(),
                inp.request_id or _new_id(),
                cfg.version,
                cfg.content_hash,
                p.chain[0].model,
                p.budget,
                p.chain,
                signals,
                p.reason + note,
                (time.perf_counter_ns() - t0) // 1000,
                tier.streaming_mode,
                inp.tenant,
                tier.name,
                p.cascade,
            ),
        )


# The positional ``build`` calls in ``Engine._decide`` rely on these field orders.
SIGNALS_FIELDS = pin_fields(
    Signals,
    (
        "task",
        "task_confidence",
        "difficulty",
        "input_tokens",
        "tier",
        "tenant",
        "latency_sla_ms",
        "candidates",
        "task_from_hint",
    ),
    __name__,
)
DECISION_FIELDS = pin_fields(
    Decision,
    (
        "decision_id",
        "request_id",
        "policy_version",
        "policy_hash",
        "model",
        "budget",
        "chain",
        "signals",
        "reason",
        "decision_time_us",
        "streaming_mode",
        "tenant",
        "tier",
        "cascade",
    ),
    __name__,
)


def describe(decision: Decision) -> Mapping[str, object]:
    """A JSON-friendly view of a decision (for the CLI and logs; holds no prompt text)."""
    s = decision.signals
    return {
        "decision_id": decision.decision_id,
        "request_id": decision.request_id,
        "policy": {"version": decision.policy_version, "hash": decision.policy_hash},
        "model": str(decision.model),
        "tier": decision.tier,
        "tenant": decision.tenant,
        "streaming_mode": decision.streaming_mode.label,
        "budget": {
            "max_input_tokens": decision.budget.max_input_tokens,
            "max_output_tokens": decision.budget.max_output_tokens,
            "max_cost_usd": decision.budget.max_cost_usd,
            "ttft_deadline_ms": decision.budget.ttft_deadline_ms,
            "total_deadline_ms": decision.budget.total_deadline_ms,
        },
        "chain": [
            {
                "hop": h.index,
                "model": str(h.model),
                "max_output_tokens": h.max_output_tokens,
                "estimated_cost_usd": round(h.estimated_cost_usd, 6),
                "context_window": h.context_window,
                "on_error": {p.error_class.label: p.action.label for p in h.on_error},
            }
            for h in decision.chain
        ],
        "signals": {
            "task": s.task.label,
            "task_confidence": round(s.task_confidence, 4),
            "task_from_hint": s.task_from_hint,
            "difficulty": round(s.difficulty, 4),
            "input_tokens": s.input_tokens,
            "latency_sla_ms": s.latency_sla_ms,
            "candidates": [
                {
                    "model": str(c.model),
                    "estimated_cost_usd": round(c.estimated_cost_usd, 6),
                    "predicted_quality": round(c.predicted_quality, 4),
                    "score": round(c.score, 4),
                    "eligible": c.eligible,
                    **({"excluded": c.excluded_reason} if c.excluded_reason else {}),
                }
                for c in s.candidates
            ],
        },
        "reason": decision.reason,
        "decision_time_us": decision.decision_time_us,
    }
