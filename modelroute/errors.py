"""The one error taxonomy of modelroute.

Every failure modelroute raises on purpose is a ``ModelrouteError``; each class knows its gRPC
status and whether a caller may retry it, and one place (``modelroute.grpc_errors``, applied to
every handler a server registers) maps them to status codes. Anything else reaching a servicer is a bug and becomes INTERNAL.

    ModelrouteError                       (INTERNAL, not retryable)
    ├── ConfigError                       (FAILED_PRECONDITION)  bad policy/config file
    ├── InvalidInput                      (INVALID_ARGUMENT)     a request field is wrong; names it
    ├── BudgetRejected                    (RESOURCE_EXHAUSTED)   cannot be afforded up front
    ├── Killed                            (UNAVAILABLE)          a kill switch is engaged
    ├── Unavailable                       (UNAVAILABLE, retryable)
    │   └── BreakerOpen                   a provider endpoint's circuit breaker is open
    └── ProviderError                     carries an ErrorClass; see dispatcher.providers
"""

from __future__ import annotations

import grpc

from modelroute.domain import ErrorClass, ModelRef


class ModelrouteError(Exception):
    """Base of every deliberate modelroute failure."""

    grpc_status: grpc.StatusCode = grpc.StatusCode.INTERNAL
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ModelrouteError):
    """The config file is invalid; the message names the key."""

    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class InvalidInput(ModelrouteError):
    """A request field is invalid; ``field`` names it."""

    grpc_status = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class BudgetRejected(ModelrouteError):
    """The request cannot be afforded even before generating anything."""

    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


class Killed(ModelrouteError):
    """A kill switch stops this request."""

    grpc_status = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(ModelrouteError):
    """The caller did not present the credentials an operation needs (admin token)."""

    grpc_status = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ModelrouteError):
    """The operation is closed on this server (e.g. admin configured but its token unset)."""

    grpc_status = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(ModelrouteError):
    grpc_status = grpc.StatusCode.UNAVAILABLE
    retryable = True


class BreakerOpen(Unavailable):
    """The circuit breaker of a provider endpoint (provider, model) is open: skip it."""

    def __init__(self, endpoint: ModelRef) -> None:
        super().__init__(f"circuit breaker open for {endpoint}")
        self.endpoint = endpoint


class ProviderError(ModelrouteError):
    """A provider call failed; ``error_class`` decides what the dispatcher does next."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.error_class in _RETRYABLE

    @property
    def grpc_status(self) -> grpc.StatusCode:  # type: ignore[override]
        return _STATUS.get(self.error_class, grpc.StatusCode.UNAVAILABLE)


_RETRYABLE = frozenset(
    {
        ErrorClass.RATE_LIMITED,
        ErrorClass.OVERLOADED,
        ErrorClass.TIMEOUT,
        ErrorClass.INTERNAL,
    }
)

_STATUS: dict[ErrorClass, grpc.StatusCode] = {
    ErrorClass.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorClass.CONTEXT_OVERFLOW: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorClass.AUTH: grpc.StatusCode.PERMISSION_DENIED,
    ErrorClass.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorClass.OVERLOADED: grpc.StatusCode.UNAVAILABLE,
    ErrorClass.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorClass.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorClass.CONTENT_POLICY: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorClass.BUDGET_EXCEEDED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorClass.KILLED: grpc.StatusCode.UNAVAILABLE,
    ErrorClass.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorClass.CANCELLED: grpc.StatusCode.CANCELLED,
    ErrorClass.NO_HOP_AVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
