# Typing stub of the C extension engine._wire.c.
from collections.abc import Sequence

from modelroute.domain import Candidate, ModelRef

def encode_candidates(
    cands: Sequence[Candidate], refs: tuple[ModelRef, ...], fields: tuple[bytes, ...], /
) -> bytes | None: ...
