"""The signal interface and the request view every signal reads."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, TypeVar

from engine.features import Features, featurize
from modelroute.domain import Message, Role

T_co = TypeVar("T_co", covariant=True)


@dataclass
class RequestView:
    """One request as the signals see it; derived values are computed once and shared."""

    messages: tuple[Message, ...]

    @cached_property
    def prompt(self) -> str:
        """The text the router judges: the last user turn (or the last turn when no user spoke)."""
        users = [m.content for m in self.messages if m.role == Role.USER]
        return users[-1] if users else self.messages[-1].content

    @cached_property
    def features(self) -> Features:
        return featurize(self.prompt)


class Signal(Protocol[T_co]):
    """Reads one property of a request. Implementations are cheap, pure and thread-safe."""

    name: str

    def read(self, req: RequestView) -> T_co: ...
