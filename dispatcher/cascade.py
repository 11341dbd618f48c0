"""Confidence escalation (cascade) while a request runs.

When the plan carries a ``Cascade``, the hop ``first_hop`` runs with its output held back (like
the buffer streaming mode: nothing reaches the client). When it finishes, the verifier scores
(prompt, answer): inline when the texts are short (well under a millisecond), otherwise on a
worker thread, so the event loop never waits on it. The verdict arrives on the request's queue
like any provider item, so deadlines and kill switches still act while it is computed.

At or above the threshold the held text is released and the request completes. Below it the
attempt ends with outcome ``escalated``, an ``Escalated`` event is sent, and the next fit hop runs
in the plan's own streaming mode; both attempts are charged. When no hop is left to escalate to,
the held answer is released rather than failing the request. Errors of the held attempt follow
the normal error actions (a failover lands on the next hop, which streams normally). Hedging is
off for cascade plans: a hedge would race the strong hop against the held one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from dispatcher.events import Escalated, Event
from modelroute.domain import Cascade, Hop, Role, StreamingMode

if TYPE_CHECKING:
    from dispatcher.attempt import Attempt
    from dispatcher.providers.base import Finish
    from dispatcher.run import Run

log = logging.getLogger(__name__)

# Above this many characters (prompt + answer) the verifier runs on a worker thread. Measured
# with the shipped verifier: ~0.14 ms per call for a short answer, ~11 ms at 20,000 characters.
INLINE_MAX_CHARS = 4000


class Scorer(Protocol):
    """What the dispatcher needs of a verifier (``engine.verifier.Verifier``)."""

    def confidence(self, prompt: str, answer: str, task: str = ...) -> float: ...


@functools.lru_cache(maxsize=1)
def default_verifier() -> Scorer:
    from engine.verifier import Verifier

    return Verifier.load()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verifier's confidence in a held answer (a queue item of the held attempt)."""

    confidence: float


def prompt_text(run: Run) -> str:
    """The text the verifier reads as the prompt: the last user message."""
    for m in reversed(run.inp.messages):
        if m.role == Role.USER:
            return m.content
    return run.inp.messages[-1].content if run.inp.messages else ""


class CascadeStep:
    """The cascade of one run: which hop is held, the verdict, and the hop escalated to."""

    def __init__(self, run: Run, cascade: Cascade, scorer: Scorer | None) -> None:
        self.run = cast("Run", weakref.proxy(run))  # owned by the run: no cycle (see Walk)
        self.cascade = cascade
        self.first = run.plan.chain[cascade.first_hop]
        self.scorer = scorer
        self.decided = False
        self.escalate_to: Hop | None = None
        self.confidence: float | None = None
        self._finish: Finish | None = None
        run.hedge_after_s = 0.0

    def holds(self, hop: Hop) -> bool:
        return not self.decided and hop is self.first

    def mode_for(self, hop: Hop) -> StreamingMode:
        """The streaming mode of a round on ``hop``: held back for the cascade's first hop."""
        return StreamingMode.BUFFER if self.holds(hop) else self.run.plan.streaming_mode

    def on_finish(self, a: Attempt, fin: Finish) -> bool:
        """The held attempt finished: start scoring; True when the verdict is pending."""
        if not self.holds(a.hop) or a.hedge:
            return False
        self._finish = fin
        prompt, answer = prompt_text(self.run), "".join(a.text)
        task = self.run.plan.signals.task.label
        queue = self.run.queue
        if len(prompt) + len(answer) <= INLINE_MAX_CHARS:
            queue.put_nowait((a, Verdict(self._score(prompt, answer, task))))
            return True
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, self._score, prompt, answer, task)
        job.add_done_callback(
            lambda f: queue.put_nowait((a, Verdict(f.result() if not f.cancelled() else 0.0)))
        )
        return True

    def _score(self, prompt: str, answer: str, task: str) -> float:
        try:
            scorer = self.scorer if self.scorer is not None else default_verifier()
            return scorer.confidence(prompt, answer, task)
        except Exception as e:  # noqa: BLE001 - a broken verifier escalates, it never fails the run
            log.error("verifier failed (%s): escalating", type(e).__name__)
            return 0.0

    def on_verdict(self, a: Attempt, v: Verdict) -> Sequence[Event]:
        """Release the held answer, or end the attempt as escalated and name the next hop."""
        run = self.run
        self.decided = True
        self.confidence = v.confidence
        threshold = self.cascade.escalate_below
        fin = self._finish
        assert fin is not None
        nxt = run.walk.pick() if v.confidence < threshold else None
        if nxt is None:
            return run._finish(a, fin)  # confident, or nothing left to escalate to: release
        run._end(a, "escalated", None)
        self.escalate_to = nxt
        return (Escalated(a.number, a.hop.index, a.model, v.confidence, threshold),)

    def next_hop(self) -> Hop | None:
        """The hop to run after an escalation (once)."""
        hop, self.escalate_to = self.escalate_to, None
        return hop


def attach(run: Run, scorer: Scorer | None) -> CascadeStep | None:
    """The run's cascade step when its plan has a cascade with a hop after the first one."""
    c = run.plan.cascade
    if c is None or c.first_hop + 1 >= len(run.plan.chain):
        return None
    return CascadeStep(run, c, scorer)
