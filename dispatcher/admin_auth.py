"""Who may call the Admin service: a bearer token from the environment variable the policy names.

``[admin] token_env = "NAME"`` in the policy file turns it on: every Admin call must carry
``authorization: Bearer <token>`` (metadata) matching the value of ``$NAME``, compared in
constant time, else UNAUTHENTICATED. When the policy names a variable that is unset, the Admin
service is closed (PERMISSION_DENIED): a missing secret never opens it. Without ``[admin]`` the
Admin service is open, which suits a loopback demo; the server says so in its log at start. The
token is never logged or echoed.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterable

from modelroute.errors import PermissionDenied, Unauthenticated

log = logging.getLogger("modelroute.admin")

_PREFIX = "bearer "


class AdminAuth:
    def __init__(self, token_env: str | None, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._env = token_env
        self._token = env.get(token_env, "") if token_env else ""
        self._required = token_env is not None

    @classmethod
    def from_env(cls, token_env: str | None) -> AdminAuth:
        auth = cls(token_env)
        auth.log_mode()
        return auth

    def log_mode(self) -> None:
        if not self._required:
            log.warning("admin service is unauthenticated (set [admin] token_env in the policy)")
        elif not self._token:
            log.warning("admin service closed: environment variable %s is not set", self._env)

    def check(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> None:
        """Raise Unauthenticated or PermissionDenied unless the call may proceed."""
        if not self._required:
            return
        if not self._token:
            raise PermissionDenied(
                f"admin service closed: environment variable {self._env} is not set on the server"
            )
        presented = ""
        for key, value in metadata or ():
            if key.lower() == "authorization":
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                if text.lower().startswith(_PREFIX):
                    presented = text[len(_PREFIX) :].strip()
        if not presented or not hmac.compare_digest(
            presented.encode("utf-8"), self._token.encode("utf-8")
        ):
            raise Unauthenticated(
                "admin call needs 'authorization: Bearer <token>' (missing or wrong)"
            )
