# Typing stub of the C extension engine/_fastpath.c.
from typing import Any

class FastPath:
    def __init__(self, spec: dict[str, Any], /) -> None: ...
    def decide(self, raw: bytes, /) -> bytes | None: ...

# More models in the policy, or more learned links, than this: no native path (engine.fastpath).
MAX_MODELS: int
MAX_LINKS: int
