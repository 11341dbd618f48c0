"""The ``LedgerStore`` protocol the dispatcher writes to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from dispatcher.ledger.rows import AttemptRow, RequestRow


@runtime_checkable
class LedgerStore(Protocol):
    def record(self, request: RequestRow, attempts: Sequence[AttemptRow]) -> None:
        """Queue one finished request with all its attempts. Never blocks the event loop: safe to
        call from a coroutine. Called once per request, when it ends."""
        ...

    async def flush(self) -> None:
        """Return once everything recorded before the call is durably written."""
        ...

    async def aclose(self) -> None:
        """Flush, then release the store. ``record`` after close is ignored."""
        ...
