# Typing stub of the C extension engine/_wire.c.
from modelroute.domain import Decision, ModelRef

def encode_decision(
    d: Decision,
    refs: tuple[ModelRef, ...],
    fields: tuple[bytes, ...],
    hop_statics: tuple[bytes, ...],
    model_body: bytes,
    /,
) -> bytes | None: ...
