"""Running the slow-path router off the event loop, with a bounded queue.

A decision the tier's policy wants re-decided with the slow router (``Engine.wants_slow``) is
recomputed on one worker thread (onnxruntime releases the GIL while MiniLM runs, so the event
loop keeps serving). At most ``max_pending`` such decisions wait or run at once; beyond that the
fast decision stands and its reason says so: the slow path sheds load instead of queueing work
past the caller's deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

from engine.service import Engine
from modelroute.domain import DecideInput, Decision

log = logging.getLogger("modelroute.engine")

DEFAULT_MAX_PENDING = 8


class SlowPath:
    def __init__(self, engine: Engine, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._engine = engine
        self._max_pending = max_pending
        self._pending = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slow-router")

    async def decide(self, inp: DecideInput) -> Decision:
        """The engine's decision, re-decided with the slow router when the policy asks."""
        fast = self._engine.decide(inp)
        if not self._engine.wants_slow(fast):
            return fast
        return await self.refine(inp, fast)

    async def refine(self, inp: DecideInput, fast: Decision) -> Decision:
        """Re-decide ``inp`` (whose fast decision is ``fast``) with the slow router."""
        if self._pending >= self._max_pending:
            return dataclasses.replace(
                fast, reason=fast.reason + "; slow-path router busy, fast decision kept"
            )
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._engine.decide_slow, inp)
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
