"""One request being carried out: the walk over the chain, actions per error class, the
streaming commit point, hedging, budgets and kill switches.

Everything that can happen to a request arrives on one queue: provider events from attempt
pumps, and control items from timers (total deadline, hedge delay, backoff) and the kill-switch
board. The loop therefore waits on a single ``queue.get()`` and reacts to whichever comes first.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dispatcher import records
from dispatcher.attempt import Attempt, Inbox, pump
from dispatcher.budget import estimate_tokens, output_allowance, price_for
from dispatcher.cascade import Verdict, attach
from dispatcher.events import (
    AttemptFailed,
    AttemptStarted,
    Completed,
    DecisionEvent,
    Delta,
    Event,
    Failed,
    FinishReason,
    Reset,
    Usage,
    UsageEvent,
)
from dispatcher.providers.base import Finish, ProviderRequest, TextChunk, UsageUpdate
from dispatcher.walk import Walk
from engine.signals.tokens import count_text_tokens
from modelroute.domain import Action, DecideInput, Decision, ErrorClass, Hop, StreamingMode
from modelroute.errors import ProviderError

if TYPE_CHECKING:
    from dispatcher.executor import Executor, GenerationParams

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Control:
    kind: str  # "deadline" | "kill" | "hedge" | "retry"
    token: int = 0


_DEADLINE = Control("deadline")
_KILL = Control("kill")


class Run:
    """A started request; iterate ``events()`` once."""

    def __init__(
        self,
        ex: Executor,
        inp: DecideInput,
        plan: Decision,
        params: GenerationParams,
        max_cost_usd: float,
        prompt_tokens: int,
    ) -> None:
        self.ex = ex
        self.inp = inp
        self.plan = plan
        self.params = params
        self.max_cost_usd = max_cost_usd
        self.prompt_tokens = prompt_tokens
        self.mode = plan.streaming_mode
        self.request_id = plan.request_id or inp.request_id or uuid.uuid4().hex
        self.tenant = plan.tenant or inp.tenant
        tier = ex.config.tiers.get(plan.tier)
        self.hedge_after_s = tier.hedge_after_ms / 1000 if tier and tier.hedge_after_ms else 0.0
        self.walk = Walk(self)
        self.cascade = attach(self, ex.options.verifier)
        self.queue = Inbox()
        self.attempts: list[Attempt] = []
        self.live: set[Attempt] = set()
        self.sent: list[str] = []  # text the client holds (since the last reset)
        self.prefix: str | None = None  # continuation prefix for the next attempt
        self.started_at = ex.clock()
        self.started_at_ms = int(ex.wall_clock() * 1000)
        total_ms = plan.budget.total_deadline_ms
        self.deadline = self.started_at + total_ms / 1000 if total_ms > 0 else float("inf")
        self.first_delivery_at: float | None = None
        self.winner: Attempt | None = None
        self.terminal: Completed | Failed | None = None
        self._failure: tuple[Attempt, ProviderError] | None = None
        self._tokens = 0

    # -- public -----------------------------------------------------------------------------

    async def events(self) -> AsyncGenerator[Event, None]:
        loop = asyncio.get_running_loop()
        unsubscribe = self.ex.kills.subscribe(lambda: self.queue.put_nowait((None, _KILL)))
        timer = None
        if self.deadline != float("inf"):
            timer = loop.call_later(self.remaining_s(), self.queue.put_nowait, (None, _DEADLINE))
        planned = False
        try:
            # The first attempt goes out before the plan is written to the client: writing an
            # event waits for the transport, and the provider's time to first token is the
            # longest wait of the request, so it starts first.
            hop = self.walk.pick()
            first = self._start(hop, hedge=False) if hop is not None else None
            if first is not None:
                await asyncio.sleep(0)  # the attempt's task writes its request now
            planned = True
            yield DecisionEvent(self.plan)
            async for ev in self._walk(hop, first):
                yield ev
            if self.terminal is None:
                yield self.fail(ErrorClass.INTERNAL, "dispatcher ended without an outcome")
        except (asyncio.CancelledError, GeneratorExit):
            if self.terminal is None:
                self.terminal = self._failed(ErrorClass.CANCELLED, "caller went away")
            raise
        except Exception as e:
            log.exception("executor bug (request %s): %s", self.request_id, type(e).__name__)
            if self.terminal is None:
                if not planned:  # the plan is the first event on every path
                    yield DecisionEvent(self.plan)
                yield self.fail(ErrorClass.INTERNAL, "internal dispatcher error")
        finally:
            unsubscribe()
            if timer is not None:
                timer.cancel()
            self._stop_all("cancelled", ErrorClass.CANCELLED)
            self._finish_books()
            await self._wind_down()

    async def _wind_down(self) -> None:
        """Let cancelled pumps leave their breaker guard before the stream ends (bounded). A
        finished attempt's pump, reading the rest of its response, is left to end by itself."""
        pending = []
        for a in self.attempts:
            if a.task is None or a.task.done():
                continue
            if a.finished:
                self.ex.keep(a.task)
            else:
                pending.append(a.task)
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def remaining_s(self) -> float:
        return self.deadline - self.ex.clock()

    def usage(self) -> Usage:
        return Usage(
            sum(a.billed_input_tokens for a in self.attempts),
            sum(a.output_tokens for a in self.attempts if a.charged),
            sum(a.cost_usd for a in self.attempts),
        )

    def spent_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    # -- terminal events --------------------------------------------------------------------

    def _failed(self, ec: ErrorClass, message: str) -> Failed:
        return Failed(ec, message, bool(self.sent), len(self.attempts), self.usage())

    def fail(self, ec: ErrorClass, message: str) -> Failed:
        self.terminal = self._failed(ec, message)
        return self.terminal

    def _complete(self, att: Attempt, reason: FinishReason) -> Completed:
        now = self.ex.clock()
        ttft = self.first_delivery_at if self.first_delivery_at is not None else now
        self.terminal = Completed(
            finish_reason=reason,
            model=att.model,
            attempts=len(self.attempts),
            usage=self.usage(),
            ttft_ms=int((ttft - self.started_at) * 1000),
            duration_ms=int((now - self.started_at) * 1000),
            escalated=att.hop.index != self.plan.chain[0].index,
            hedged=any(a.hedge for a in self.attempts),
        )
        return self.terminal

    # -- the walk ---------------------------------------------------------------------------

    async def _walk(self, hop: Hop | None, started: Attempt | None) -> AsyncIterator[Event]:
        """Walk the chain from ``hop``, whose attempt may be ``started`` already."""
        while self.terminal is None:
            if hop is None:
                yield self.walk.nothing_left()
                return
            self._failure = None
            if self.cascade is not None:
                self.mode = self.cascade.mode_for(hop)
            async for ev in self._round(hop, started):
                yield ev
            started = None
            if self.terminal is None and self._failure is None and self.cascade is not None:
                hop = self.cascade.next_hop()  # escalated: the next hop answers
                if hop is not None:
                    continue
            if self.terminal is not None or self._failure is None:
                return
            att, err = self._failure
            async for ev in self._after_failure(att, err):
                yield ev
            hop = self.walk.next_hop

    async def _after_failure(self, att: Attempt, err: ProviderError) -> AsyncIterator[Event]:
        step = self.walk.on_error(att, err)
        action = step.action
        if self.sent and action != Action.STOP and self.mode == StreamingMode.FAIL:
            action = Action.STOP
        yield AttemptFailed(
            att.number,
            att.hop.index,
            att.model,
            err.error_class,
            err.message,
            action,
            int(step.delay_s * 1000),
        )
        if action == Action.STOP:
            yield self.fail(err.error_class, err.message)
            return
        assert step.hop is not None
        if self.sent:
            if self.mode == StreamingMode.CONTINUE and step.hop.supports_continuation:
                self.prefix = "".join(self.sent)
            else:
                yield Reset(
                    f"{err.error_class.label} after partial output", len("".join(self.sent))
                )
                self.sent.clear()
                self.prefix = None
        if step.delay_s > 0:
            async for ev in self._backoff(step.delay_s):
                yield ev

    async def _backoff(self, delay_s: float) -> AsyncIterator[Event]:
        self._tokens += 1
        token = Control("retry", self._tokens)
        sleeper = asyncio.get_running_loop().create_task(self.ex.sleep(delay_s))
        sleeper.add_done_callback(lambda _t: self.queue.put_nowait((None, token)))
        try:
            while True:
                att, item = await self.queue.get()
                if item == token:
                    return
                ev = self._control(item) if att is None else None
                if ev is not None:
                    yield ev
                    return
        finally:
            sleeper.cancel()

    # -- one round: an attempt, maybe a hedge beside it ---------------------------------------

    def _start(self, hop: Hop, hedge: bool) -> Attempt | None:
        price = price_for(self.ex.config, hop.model)
        in_tokens = self.prompt_tokens + (count_text_tokens(self.prefix) if self.prefix else 0)
        limit = self.walk.token_limit(hop)
        allowance = output_allowance(self.max_cost_usd - self.spent_usd(), price, in_tokens, limit)
        if allowance is None:
            return None
        att = Attempt(
            number=len(self.attempts) + 1,
            hop=hop,
            hedge=hedge,
            started_at=self.ex.clock(),
            started_at_ms=int(self.ex.wall_clock() * 1000),
            max_tokens=allowance.max_tokens,
            capped_by_budget=allowance.capped_by_budget,
            price=price,
            input_tokens=in_tokens,
        )
        req = ProviderRequest(
            model=hop.model.name,
            messages=self.inp.messages,
            max_tokens=allowance.max_tokens,
            temperature=self.params.temperature,
            top_p=self.params.top_p,
            stop=self.params.stop,
            assistant_prefix=self.prefix,
            request_id=self.request_id,
            extra_headers=self.walk.extra_headers(),
        )
        ttft_ms = self.plan.budget.ttft_deadline_ms
        att.task = asyncio.get_running_loop().create_task(
            pump(
                self.ex.providers[hop.model.provider],
                req,
                att,
                self.ex.breakers,
                self.queue,
                ttft_ms / 1000 if ttft_ms > 0 else None,
            )
        )
        self.attempts.append(att)
        self.live.add(att)
        self.walk.tried(hop)
        return att

    async def _round(self, hop: Hop, started: Attempt | None = None) -> AsyncIterator[Event]:
        att = started or self._start(hop, hedge=False)
        if att is None:
            yield self.fail(
                ErrorClass.BUDGET_EXCEEDED, "the remaining budget cannot pay the prompt"
            )
            return
        yield AttemptStarted(att.number, hop.index, hop.model)
        self.winner = None
        hedge_timer = None
        self._tokens += 1
        hedge = Control("hedge", self._tokens)  # a token: a late timer of an old round is ignored
        if self.hedge_after_s > 0:
            hedge_timer = asyncio.get_running_loop().call_later(
                self.hedge_after_s, self.queue.put_nowait, (None, hedge)
            )
        try:
            while self.terminal is None and self.live:
                a, item = await self.queue.get()
                if a is None:
                    ev = self._control(item) if item != hedge else self._hedge()
                    if ev is not None:
                        yield ev
                    continue
                if a not in self.live:
                    continue
                out = self._provider_item(a, item)
                if self.queue.ready() and len(out) == 1 and type(out[0]) is Delta:
                    out = self._merge_ready(a, out[0])
                for ev in out:
                    yield ev
        finally:
            if hedge_timer is not None:
                hedge_timer.cancel()

    def _merge_ready(self, a: Attempt, first: Delta) -> Sequence[Event]:
        """Fold the text chunks of ``a`` already queued behind ``first`` into one delta.

        Only what is queued now is merged (a delta never waits for more text); each chunk still
        goes through ``_text`` (metering, budget). Merging stops at anything else, which follows
        the merged delta in order."""
        texts = [first.text]
        rest: Sequence[Event] = ()
        q = self.queue
        while q.ready() and self.terminal is None:
            b, item = q.peek()
            if b is not a or type(item) is not TextChunk:
                break
            q.get_nowait()
            out = self._text(a, item.text)
            if len(out) == 1 and type(out[0]) is Delta:
                texts.append(out[0].text)
            elif out:
                rest = out
                break
        merged = Delta("".join(texts), first.attempt) if len(texts) > 1 else first
        return (merged, *rest)

    def _hedge(self) -> Event | None:
        if self.winner is not None or len(self.live) != 1:
            return None
        hop = self.walk.pick()
        if hop is None:
            return None
        att = self._start(hop, hedge=True)
        if att is None:
            return None
        return AttemptStarted(att.number, hop.index, hop.model, hedge=True)

    def _control(self, item: object) -> Event | None:
        """React to a timer or kill-switch flip; returns a terminal event when one ends the run."""
        if item == _DEADLINE:
            self._stop_all("cancelled", ErrorClass.DEADLINE_EXCEEDED)
            return self.fail(ErrorClass.DEADLINE_EXCEEDED, "total deadline passed")
        if item == _KILL:
            sw = self.ex.kills.for_request(self.plan.tier, self.tenant)
            for a in self.live:
                sw = sw or self.ex.kills.for_endpoint(a.model)
            if sw is not None:
                self._stop_all("cancelled", ErrorClass.KILLED)
                return self.fail(ErrorClass.KILLED, f"kill switch on {sw.scope.label} {sw.value!r}")
        return None

    def _provider_item(self, a: Attempt, item: object) -> Sequence[Event]:
        """React to one item of an attempt's stream (plain function: this is the per-chunk path)."""
        if isinstance(item, TextChunk):
            return self._text(a, item.text)
        if isinstance(item, UsageUpdate):
            if item.input_tokens is not None:
                a.input_tokens = item.input_tokens
            if item.output_tokens is not None:
                a.output_tokens = item.output_tokens
                a.provider_output = True
            usage: list[Event] = [UsageEvent(self.usage())] if self.winner in (None, a) else []
            return usage + self._budget_check(a, dropped_text=False)
        if isinstance(item, Finish):
            return self._finish(a, item)
        if isinstance(item, ProviderError):
            failed = self._attempt_error(a, item)
            return (failed,) if failed is not None else ()
        if isinstance(item, Verdict) and self.cascade is not None:
            return self.cascade.on_verdict(a, item)
        return ()

    def _take_winner(self, a: Attempt) -> None:
        if self.winner is None:
            self.winner = a
            for other in list(self.live):
                if other is not a:
                    self._end(other, "cancelled", None)

    def _text(self, a: Attempt, text: str) -> Sequence[Event]:
        if self.winner is not a:
            self._take_winner(a)
            if a is not self.winner:
                return ()
        if not text:
            return ()
        if a.first_text_at is None:
            a.first_text_at = self.ex.clock()
        a.add_text(text, estimate_tokens(text))
        stop = self._budget_check(a, dropped_text=True)
        if stop:
            return stop
        if self.mode == StreamingMode.BUFFER:
            return ()
        self.sent.append(text)
        if self.first_delivery_at is None:
            self.first_delivery_at = self.ex.clock()
        return (Delta(text, a.number),)

    def _finish(self, a: Attempt, fin: Finish) -> Sequence[Event]:
        self._take_winner(a)
        if a is not self.winner:
            return ()
        if self.cascade is not None and self.cascade.on_finish(a, fin):
            return ()  # held answer: the verdict arrives on the queue
        reason = FinishReason.from_provider(fin.reason)
        if reason == FinishReason.LENGTH and a.capped_by_budget:
            reason = FinishReason.BUDGET
        self._end(a, "ok", None)
        return [*self._flush(a), self._complete(a, reason)]

    def _flush(self, a: Attempt) -> list[Event]:
        if self.mode != StreamingMode.BUFFER or not a.text:
            return []
        text = "".join(a.text)
        self.sent.append(text)
        self.first_delivery_at = self.ex.clock()
        return [Delta(text, a.number)]

    def _attempt_error(self, a: Attempt, err: ProviderError) -> Event | None:
        self._end(a, "failed", err.error_class)
        if self.live and self.winner is None and not self.walk.stops(a, err):
            # A hedged sibling is still running: drop this one and carry on with it.
            return AttemptFailed(
                a.number, a.hop.index, a.model, err.error_class, err.message, Action.FAIL_OVER
            )
        self._stop_all("cancelled", None)
        self._failure = (a, err)
        return None

    def _budget_check(self, a: Attempt, *, dropped_text: bool) -> list[Event]:
        """Stop the stream when the metered cost passed the request's budget.

        The chunk that crossed the budget is charged but not delivered. Buffering (batch) tiers
        truncate: they complete with the answer so far and FINISH_REASON_BUDGET. Streaming tiers
        end with a failed event, BUDGET_EXCEEDED, partial when text was already sent.
        """
        if self.max_cost_usd == math.inf or self.spent_usd() <= self.max_cost_usd:
            return []
        if dropped_text and a.text:
            a.text.pop()
        self._end(a, "cancelled", ErrorClass.BUDGET_EXCEEDED)
        self._stop_all("cancelled", None)
        if self.mode == StreamingMode.BUFFER:
            return [*self._flush(a), self._complete(a, FinishReason.BUDGET)]
        return [self.fail(ErrorClass.BUDGET_EXCEEDED, "cost budget reached during the stream")]

    def _end(self, a: Attempt, outcome: str, ec: ErrorClass | None) -> None:
        if a not in self.live:
            return
        self.live.discard(a)
        a.outcome = outcome
        a.error_class = ec
        a.ended_at = self.ex.clock()
        if a.task is not None and not a.finished and not a.task.done():
            a.task.cancel()

    def _stop_all(self, outcome: str, ec: ErrorClass | None) -> None:
        for a in list(self.live):
            self._end(a, outcome, ec)

    def _finish_books(self) -> None:
        terminal = self.terminal or self._failed(ErrorClass.INTERNAL, "no outcome")
        cost = self.spent_usd()
        tenant = self.ex.config.tenants.get(self.tenant)
        if cost > 0 and tenant is not None and tenant.spend_limit_usd is not None:
            self.ex.spawn(self.ex.spend.add(tenant.name, cost, tenant.spend_window_s))
        if self.ex.ledger is not None:
            request, attempts = records.rows(self, terminal)
            self.ex.ledger.record(request, attempts)
