"""Turning a recorded answer into what one request gets: prefill continuation, stop sequences,
max_tokens truncation, and chunks of a few tokens each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.simulator.dialect import LENGTH, STOP, STOP_SEQUENCE, Answer
from dispatcher.simulator.replay import pieces

DEFAULT_CHUNK_TOKENS = 4


@dataclass(frozen=True, slots=True)
class Script:
    """The chunks to send (text, tokens) and the complete answer they add up to."""

    chunks: tuple[tuple[str, int], ...]
    answer: Answer

    def cut_after(self, n: int, finish: str) -> Script:
        """The first ``n`` chunks only, ending with ``finish`` (content_filter)."""
        kept = self.chunks[:n]
        text = "".join(c for c, _ in kept)
        return Script(kept, Answer(text, sum(t for _, t in kept), finish))


def continuation(recorded: str, prefix: str | None) -> str:
    """What follows an assistant prefill: the recorded answer after the prefix's length.

    When the prefill is the start of this very answer this is exactly the rest of it; a prefill
    written by another model resumes at the same offset (deterministic, never repeats it).
    """
    if not prefix:
        return recorded
    return recorded[len(prefix) :]


def _apply_stop(text: str, stop: Sequence[str]) -> tuple[str, str | None]:
    best: tuple[int, str] | None = None
    for s in stop:
        at = text.find(s)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, s)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def build_script(
    recorded: str,
    *,
    prefix: str | None = None,
    max_tokens: int | None = None,
    stop: Sequence[str] = (),
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> Script:
    text, stop_hit = _apply_stop(continuation(recorded, prefix), stop)
    parts, cumulative = pieces(text)
    chunks: list[tuple[str, int]] = []
    buf: list[str] = []
    sent_tokens = 0  # tokens in chunks already closed
    total = 0
    truncated = False
    for part, cum in zip(parts, cumulative, strict=True):
        if max_tokens is not None and cum > max_tokens:
            truncated = True
            break
        buf.append(part)
        total = cum
        if total - sent_tokens >= chunk_tokens:
            chunks.append(("".join(buf), total - sent_tokens))
            buf, sent_tokens = [], total
    if buf:
        chunks.append(("".join(buf), total - sent_tokens))
    if truncated:
        finish, seq = LENGTH, None
    elif stop_hit is not None:
        finish, seq = STOP_SEQUENCE, stop_hit
    else:
        finish, seq = STOP, None
    sent = "".join(c for c, _ in chunks)
    return Script(tuple(chunks), Answer(sent, total, finish, seq))
