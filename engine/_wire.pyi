# Typing stub of the C extension engine/_wire.c.
from modelroute.domain import Decision, ErrorPolicy, ModelRef

# id(model) -> (model, on_error, context_window, typical_ttft_ms, supports_continuation, bytes)
HopStatics = dict[int, tuple[ModelRef, tuple[ErrorPolicy, ...], int, int, bool, bytes]]

def encode_decision(
    d: Decision,
    refs: tuple[ModelRef, ...],
    fields: tuple[bytes, ...],
    hop_statics: HopStatics,
    model_body: bytes,
    /,
) -> bytes | None: ...
