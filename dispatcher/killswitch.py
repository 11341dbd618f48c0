"""Kill switches by tier, tenant, provider and model, flipped at run time.

New requests check the board before any work (``Killed``, gRPC UNAVAILABLE). Running requests
subscribe a callback; every flip bumps ``version`` and calls the subscribers at once, so an
in-flight stream learns of a switch in the same event-loop turn, not after a polling interval.
State lives in this process; a shared store (Redis) can back the same interface later.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from modelroute.domain import ModelRef

log = logging.getLogger(__name__)


class KillScope(enum.IntEnum):
    TIER = 1
    TENANT = 2
    PROVIDER = 3
    MODEL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class KillSwitch:
    scope: KillScope
    value: str
    engaged: bool
    reason: str
    changed_at_unix_ms: int


class KillSwitchBoard:
    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._switches: dict[tuple[KillScope, str], KillSwitch] = {}
        self._subscribers: set[Callable[[], None]] = set()
        self._wall = wall_clock
        self.version = 0

    def set(self, scope: KillScope, value: str, engaged: bool, reason: str = "") -> KillSwitch:
        sw = KillSwitch(scope, value, engaged, reason, int(self._wall() * 1000))
        self._switches[(scope, value)] = sw
        self.version += 1
        log.warning(
            "kill switch %s %s=%s", "engaged" if engaged else "released", scope.label, value
        )
        for cb in list(self._subscribers):
            cb()
        return sw

    def list(self) -> list[KillSwitch]:
        return sorted(self._switches.values(), key=lambda s: (s.scope, s.value))

    def _engaged(self, scope: KillScope, value: str) -> KillSwitch | None:
        sw = self._switches.get((scope, value))
        return sw if sw is not None and sw.engaged else None

    def for_request(self, tier: str, tenant: str) -> KillSwitch | None:
        """The engaged switch that stops a request of this tier and tenant, if any."""
        return self._engaged(KillScope.TIER, tier) or self._engaged(KillScope.TENANT, tenant)

    def for_endpoint(self, model: ModelRef) -> KillSwitch | None:
        """The engaged switch that stops this provider or model (by name or provider/name)."""
        return (
            self._engaged(KillScope.PROVIDER, model.provider)
            or self._engaged(KillScope.MODEL, model.name)
            or self._engaged(KillScope.MODEL, str(model))
        )

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` on every flip; returns the function that unsubscribes."""
        self._subscribers.add(callback)
        return lambda: self._subscribers.discard(callback)
