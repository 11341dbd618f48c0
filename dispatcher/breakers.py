"""Circuit breakers, one per provider endpoint (provider, model), on pybreaker.

pybreaker is thread-based and knows nothing of coroutines; it is used here only in the ways that
are correct from asyncio:

* each attempt runs inside ``with breaker.calling():`` and the stream consumption up to its
  ``Finish`` stays inside that block, so a failure in the middle of a stream counts
  (``breaker.call(async_fn)`` would record success when the coroutine object is created); what
  is read after the Finish (the end of the HTTP body, for the connection's reuse) is outside;
* only the tripping classes count as failures: OVERLOADED, TIMEOUT, INTERNAL. Every other
  outcome (a 400, a 429, a cancelled client, a budget or kill switch stopping the stream, a bug)
  is neutral: it neither counts as a failure nor resets the failure count. pybreaker treats an
  excluded error as a success, so the storage ignores the reset while a neutral outcome is
  being recorded;
* half-open lets exactly ONE probe through (pybreaker lets every concurrent caller in): the
  board admits one attempt and refuses the others with ``BreakerOpen`` until the probe ends; a
  probe with a neutral outcome frees the slot for the next caller;
* an outcome counts only if the breaker is still in the state the attempt was admitted in: a
  slow attempt admitted while closed cannot reopen a breaker that has since been half-opened or
  closed again, nor close one that opened meanwhile;
* nothing blocks: the lock pybreaker takes is uncontended (one event loop thread), and state
  lives in memory.

State changes are logged on logger ``modelroute.breakers`` and passed to ``on_change``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pybreaker

from modelroute.domain import ErrorClass, ModelRef
from modelroute.errors import BreakerOpen, ProviderError

log = logging.getLogger("modelroute.breakers")

TRIPPING_CLASSES = frozenset({ErrorClass.OVERLOADED, ErrorClass.TIMEOUT, ErrorClass.INTERNAL})
_STATE_NAMES = {
    pybreaker.STATE_CLOSED: "closed",
    pybreaker.STATE_OPEN: "open",
    pybreaker.STATE_HALF_OPEN: "half_open",
}


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    endpoint: ModelRef
    state: str  # "closed" | "open" | "half_open"
    fail_count: int
    changed_at_unix_ms: int


def trips(exc: BaseException) -> bool:
    """Whether an attempt's failure counts against its endpoint's breaker."""
    return isinstance(exc, ProviderError) and exc.error_class in TRIPPING_CLASSES


class _Storage(pybreaker.CircuitMemoryStorage):
    """In-memory state; while ``neutral`` is set, success bookkeeping is skipped."""

    def __init__(self) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self.neutral = False

    def reset_counter(self) -> None:
        if not self.neutral:
            super().reset_counter()

    def increment_success_counter(self) -> None:
        if not self.neutral:
            super().increment_success_counter()


class _Endpoint:
    def __init__(self, board: BreakerBoard, ref: ModelRef) -> None:
        self.ref = ref
        self.storage = _Storage()
        self.probing = False
        self.generation = 0
        self.changed_at_ms = int(time.time() * 1000)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=board.fail_max,
            reset_timeout=board.reset_timeout_s,
            exclude=[lambda _exc: self.storage.neutral],
            listeners=[_Listener(board, self)],
            state_storage=self.storage,
            name=str(ref),
            throw_new_error_on_trip=False,
        )

    def state(self) -> str:
        return _STATE_NAMES[self.breaker.current_state]

    def cooled_down(self) -> bool:
        opened_at = self.storage.opened_at
        if opened_at is None:
            return True
        return datetime.now(UTC) >= opened_at + timedelta(seconds=self.breaker.reset_timeout)

    def admissible(self) -> bool:
        state = self.breaker.current_state
        if state == pybreaker.STATE_CLOSED:
            return True
        if self.probing:
            return False
        return state == pybreaker.STATE_HALF_OPEN or self.cooled_down()

    def snapshot(self) -> BreakerSnapshot:
        return BreakerSnapshot(
            self.ref, self.state(), self.breaker.fail_counter, self.changed_at_ms
        )


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, board: BreakerBoard, ep: _Endpoint) -> None:
        self.board = board
        self.ep = ep

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        # Called before pybreaker stores the new state: take it from the argument.
        old = _STATE_NAMES.get(old_state.name, "?") if old_state is not None else "?"
        self.board._changed(self.ep, old, _STATE_NAMES[new_state.name])


class BreakerBoard:
    """All endpoints' breakers; endpoints appear on first use.

    ``with board.guard(endpoint):`` wraps one whole attempt (request and full stream
    consumption) and raises ``BreakerOpen`` at entry when the endpoint must be skipped.
    ``is_available`` tells the chain walker the same thing without consuming the probe slot."""

    def __init__(
        self,
        fail_max: int = 5,
        reset_timeout_s: float = 30.0,
        on_change: Callable[[BreakerSnapshot], None] | None = None,
    ) -> None:
        if fail_max < 1 or reset_timeout_s < 0:
            raise ValueError("fail_max must be >= 1 and reset_timeout_s >= 0")
        self.fail_max = fail_max
        self.reset_timeout_s = reset_timeout_s
        self.on_change = on_change
        self._endpoints: dict[ModelRef, _Endpoint] = {}

    def is_available(self, endpoint: ModelRef) -> bool:
        ep = self._endpoints.get(endpoint)
        return ep is None or ep.admissible()

    @contextlib.contextmanager
    def guard(self, endpoint: ModelRef) -> Iterator[None]:
        ep = self._endpoints.get(endpoint)
        if ep is None:
            ep = self._endpoints[endpoint] = _Endpoint(self, endpoint)
        if not ep.admissible():
            raise BreakerOpen(endpoint)
        probe = ep.breaker.current_state != pybreaker.STATE_CLOSED
        if probe:
            ep.probing = True
        try:
            with ep.breaker.calling():
                generation = ep.generation
                try:
                    yield
                except BaseException as e:
                    ep.storage.neutral = not trips(e) or ep.generation != generation
                    raise
                ep.storage.neutral = ep.generation != generation
        except pybreaker.CircuitBreakerError:
            raise BreakerOpen(endpoint) from None
        finally:
            ep.storage.neutral = False
            if probe:
                ep.probing = False

    def snapshot(self) -> list[BreakerSnapshot]:
        return [ep.snapshot() for ep in self._endpoints.values()]

    def _changed(self, ep: _Endpoint, old: str, new: str) -> None:
        ep.generation += 1
        ep.changed_at_ms = int(time.time() * 1000)
        snap = BreakerSnapshot(ep.ref, new, ep.breaker.fail_counter, ep.changed_at_ms)
        level = logging.WARNING if snap.state == "open" else logging.INFO
        log.log(
            level,
            "breaker %s: %s -> %s (failures %d)",
            ep.ref,
            old,
            snap.state,
            snap.fail_count,
        )
        if self.on_change is not None:
            try:
                self.on_change(snap)
            except Exception:
                log.exception("breaker %s: on_change callback failed", ep.ref)
