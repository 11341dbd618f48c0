"""The signal interface and the request view every signal reads."""

from __future__ import annotations

from typing import Protocol, TypeVar

from engine.features import Features, featurize
from modelroute.domain import Message, Role

T_co = TypeVar("T_co", covariant=True)


class RequestView:
    """One request as the signals see it; derived values are computed once and shared.

    (A plain slots class: ``functools.cached_property`` takes a lock on first access, which
    costs more than the prompt lookup itself on the Decide path.)"""

    __slots__ = ("_features", "_prompt", "messages")

    def __init__(self, messages: tuple[Message, ...]) -> None:
        self.messages = messages
        self._prompt: str | None = None
        self._features: Features | None = None

    @property
    def prompt(self) -> str:
        """The text the router judges: the last user turn (or the last turn when no user spoke)."""
        p = self._prompt
        if p is None:
            p = self._prompt = prompt_of(self.messages)
        return p

    @property
    def features(self) -> Features:
        f = self._features
        if f is None:
            f = self._features = featurize(self.prompt)
        return f


def prompt_of(messages: tuple[Message, ...]) -> str:
    for m in reversed(messages):
        if m.role == Role.USER:
            return m.content
    return messages[-1].content


class Signal(Protocol[T_co]):
    """Reads one property of a request. Implementations are cheap, pure and thread-safe."""

    name: str

    def read(self, req: RequestView) -> T_co: ...
