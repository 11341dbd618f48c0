"""Field-order guards for ``engine._policy.build``, which fills a frozen dataclass positionally."""

from __future__ import annotations

import dataclasses


def pin_fields(cls: type, names: tuple[str, ...], user: str) -> tuple[str, ...]:
    """``names`` when they are ``cls``'s dataclass fields in order; else ImportError naming
    ``user`` (the module whose positional ``build`` calls must then be updated)."""
    have = tuple(f.name for f in dataclasses.fields(cls))
    if have != names:
        raise ImportError(f"{user}: {cls.__name__} fields are now {have}; update its build calls")
    return names
