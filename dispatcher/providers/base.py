"""The provider interface the dispatcher streams through.

An adapter turns a ``ProviderRequest`` into a stream of ``StreamEvent``s, and every failure into
a ``modelroute.errors.ProviderError`` carrying its ``ErrorClass`` (HTTP status, errors sent inside
the SSE stream, connection failures, malformed streams). Time-to-first-token and total deadlines
are the dispatcher's; the adapter enforces connect and between-chunk (stall) timeouts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from modelroute.domain import Message


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    # For continuation after a failed stream: the partial answer the model should continue.
    assistant_prefix: str | None = None
    request_id: str = ""
    # Passed through as HTTP headers (tests use them to ask the simulator for faults).
    extra_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """Usage as the provider reports it; None where not (yet) reported. Cumulative."""

    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """The provider ended the answer normally: "stop", "length", "content_filter"."""

    reason: str


StreamEvent = TextChunk | UsageUpdate | Finish


class Provider(Protocol):
    name: str

    def stream(self, req: ProviderRequest) -> AsyncIterator[StreamEvent]:
        """Stream one answer; raises ProviderError. A stream that ends without a Finish is
        reported by raising ProviderError (the connection was cut)."""
        ...

    async def aclose(self) -> None: ...


class PushProvider(Provider, Protocol):
    """A provider that can also push a stream's events (the dispatcher uses ``stream_into``
    when ``pushes`` is true): no task is woken per event, one loop turn less per chunk."""

    pushes: bool

    async def stream_into(self, req: ProviderRequest, emit: Callable[[StreamEvent], None]) -> None:
        """Call ``emit`` with each event of the answer as it arrives, from the connection's
        callbacks; return once the ``Finish`` was emitted, raise ProviderError otherwise."""
        ...


class Secret:
    """A provider key: its value is read only by ``reveal()``; repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def read_api_key(env_var: str | None, environ: Mapping[str, str]) -> Secret | None:
    """The key held by the environment variable a provider config names (None if unset)."""
    if not env_var:
        return None
    value = environ.get(env_var, "").strip()
    return Secret(value) if value else None
