"""One attempt: a provider stream pumped into the request's queue, inside its circuit breaker.

The pump runs as its own task so the request can race it against timers, kill switches and a
hedged sibling. It enforces the time-to-first-token deadline itself, inside the breaker guard,
so a silent provider counts against its breaker; cancellation (client gone, hedge lost, kill,
budget) is not the provider's fault and passes through the guard as ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from dispatcher.budget import Price
from dispatcher.providers.base import (
    Finish,
    Provider,
    ProviderRequest,
    PushProvider,
    StreamEvent,
    TextChunk,
)
from modelroute.domain import ErrorClass, Hop, ModelRef
from modelroute.errors import ProviderError, Unavailable

log = logging.getLogger(__name__)


class Breakers(Protocol):
    """What the executor needs of the breaker board (``dispatcher.breakers.BreakerBoard``)."""

    def is_available(self, endpoint: ModelRef) -> bool: ...

    def guard(self, endpoint: ModelRef) -> AbstractContextManager[Any]: ...


class NoBreakers:
    """A board whose breakers never open (for tests and tools that run without breakers)."""

    def is_available(self, endpoint: ModelRef) -> bool:
        return True

    def guard(self, endpoint: ModelRef) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()


@dataclass(eq=False, slots=True)
class Attempt:
    number: int
    hop: Hop
    hedge: bool
    started_at: float
    started_at_ms: int
    max_tokens: int
    capped_by_budget: bool
    price: Price
    input_tokens: int
    output_tokens: int = 0
    provider_output: bool = False
    connected: bool = False
    text: list[str] = field(default_factory=list)
    first_text_at: float | None = None
    outcome: str = ""
    error_class: ErrorClass | None = None
    ended_at: float | None = None
    task: asyncio.Task[None] | None = None
    # The provider's stream reached its Finish: what is left of the task only reads the rest of
    # the response (so that its connection is reused), outside the breaker guard; the run lets
    # it end by itself instead of cancelling it.
    finished: bool = False

    @property
    def model(self) -> ModelRef:
        return self.hop.model

    @property
    def charged(self) -> bool:
        """Whether the provider is assumed to bill this attempt (it accepted the prompt)."""
        return (
            self.connected
            or self.outcome == "cancelled"
            or (self.error_class == ErrorClass.TIMEOUT)
        )

    @property
    def cost_usd(self) -> float:
        if not self.charged:
            return 0.0
        return self.price.cost(self.input_tokens, self.output_tokens)

    @property
    def billed_input_tokens(self) -> int:
        return self.input_tokens if self.charged else 0

    def add_text(self, text: str, estimate: int) -> None:
        self.text.append(text)
        if not self.provider_output:
            self.output_tokens += estimate


# Queue items: (attempt, payload); control items carry attempt None.
Item = tuple[Attempt | None, object]


class Inbox:
    """The request's single queue: unbounded, one consumer, cheaper than ``asyncio.Queue``.

    ``put_nowait`` appends and wakes the consumer only when it is waiting; ``get`` returns the
    oldest item; ``ready`` tells how many more are queued now, so the consumer can take what is
    already there (e.g. to merge text deltas) without waiting for more.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: collections.deque[Item] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Item) -> None:
        self._items.append(item)
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def ready(self) -> int:
        return len(self._items)

    def peek(self) -> Item:
        return self._items[0]

    def get_nowait(self) -> Item:
        return self._items.popleft()

    async def get(self) -> Item:
        while not self._items:
            w = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await w
            finally:
                self._waiter = None
        return self._items.popleft()


def classify_unexpected(exc: BaseException) -> ProviderError:
    """Map an exception a guard or adapter raised outside the taxonomy."""
    name = type(exc).__name__
    if isinstance(exc, Unavailable):  # BreakerOpen: the endpoint's breaker refused the attempt
        return ProviderError(ErrorClass.OVERLOADED, exc.message)
    log.error("provider adapter raised %s outside the error taxonomy", name)
    return ProviderError(ErrorClass.INTERNAL, f"adapter error ({name})")


async def pump(
    provider: Provider,
    req: ProviderRequest,
    att: Attempt,
    breakers: Breakers,
    queue: Inbox,
    ttft_s: float | None,
) -> None:
    """Stream one attempt into ``queue``; failures arrive there as ``ProviderError``.

    The breaker guard covers the stream up to its ``Finish``. A pulled stream is closed after
    the guard then: closing reads what follows the provider's end marker (the rest of the HTTP
    body), and a run that cancelled that read would close a connection it could reuse. A
    provider that ``pushes`` puts its events on the queue itself, from its connection's
    callbacks (see ``_push``), and reads the rest of its response in the background."""
    stream: AsyncIterator[StreamEvent] | None = None
    try:
        with breakers.guard(att.model):
            if getattr(provider, "pushes", False):
                await _push(cast("PushProvider", provider), req, att, queue, ttft_s)
                return
            stream = provider.stream(req)
            await _consume(stream, att, queue, ttft_s)
    except ProviderError as e:
        queue.put_nowait((att, e))
        return
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - an adapter bug must end this attempt, not the run
        queue.put_nowait((att, classify_unexpected(e)))
        return
    try:
        await _aclose(stream)
    except ProviderError:
        pass  # the answer is complete; a broken end of the response changes nothing
    except Exception as e:  # noqa: BLE001
        classify_unexpected(e)  # logged; the attempt has finished already


async def _push(
    provider: PushProvider,
    req: ProviderRequest,
    att: Attempt,
    queue: Inbox,
    ttft_s: float | None,
) -> None:
    """``_consume`` for a pushing provider: it calls the feed from its connection's callbacks,
    and stops calling it once this task is cancelled."""
    async with _ttft_deadline(ttft_s) as tm:
        await provider.stream_into(req, _Feed(att, queue, tm))
    if not att.finished:
        raise ProviderError(ErrorClass.OVERLOADED, "stream ended without a finish")


async def _consume(
    stream: AsyncIterator[StreamEvent],
    att: Attempt,
    queue: Inbox,
    ttft_s: float | None,
) -> None:
    """Put the stream's events on ``queue`` up to its ``Finish`` (then ``att.finished`` is set
    and the caller closes the stream); on any other way out the stream is closed here."""
    try:
        async with _ttft_deadline(ttft_s) as tm:
            feed = _Feed(att, queue, tm)
            async for ev in stream:
                feed(ev)
                if att.finished:
                    return
    finally:
        if not att.finished:
            await _aclose(stream)
    raise ProviderError(ErrorClass.OVERLOADED, "stream ended without a finish")


class _Feed:
    """What an attempt does with each event of its stream, pulled or pushed: mark it connected,
    stop the TTFT clock at the first text or Finish, and queue it; nothing after the Finish."""

    __slots__ = ("att", "first", "queue", "tm")

    def __init__(self, att: Attempt, queue: Inbox, tm: asyncio.Timeout) -> None:
        self.att = att
        self.queue = queue
        self.tm = tm
        self.first = True

    def __call__(self, ev: StreamEvent) -> None:
        att = self.att
        if att.finished:
            return
        att.connected = True
        if self.first and isinstance(ev, TextChunk | Finish):
            self.first = False
            self.tm.reschedule(None)
        if isinstance(ev, Finish):
            att.finished = True
        self.queue.put_nowait((att, ev))


@contextlib.asynccontextmanager
async def _ttft_deadline(ttft_s: float | None) -> AsyncIterator[asyncio.Timeout]:
    """``asyncio.timeout`` until the first token (the feed lifts it); its expiry is TIMEOUT."""
    try:
        async with asyncio.timeout(ttft_s) as tm:
            yield tm
    except TimeoutError:
        if not tm.expired():
            raise
        ms = int((ttft_s or 0) * 1000)
        raise ProviderError(ErrorClass.TIMEOUT, f"no first token within {ms} ms") from None


async def _aclose(stream: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
