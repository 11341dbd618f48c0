"""Shared dispatcher state behind small protocols (in-memory now; a Redis store can follow).

``SpendStore`` keeps per-tenant spend in fixed time windows: ``spent`` reads the current window,
``add`` charges it. Windows are aligned to multiples of ``window_s`` so every replica agrees.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class SpendStore(Protocol):
    async def spent(self, key: str, window_s: int) -> float: ...

    async def add(self, key: str, amount_usd: float, window_s: int) -> float: ...


class InMemorySpendStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, float]] = {}

    def _current(self, key: str, window_s: int) -> tuple[int, float]:
        window = int(self._clock() // window_s)
        start, amount = self._windows.get(key, (window, 0.0))
        return (window, amount if start == window else 0.0)

    async def spent(self, key: str, window_s: int) -> float:
        return self._current(key, window_s)[1]

    async def add(self, key: str, amount_usd: float, window_s: int) -> float:
        window, amount = self._current(key, window_s)
        total = amount + amount_usd
        self._windows[key] = (window, total)
        return total
