"""Errors as values with stable codes, mapped to gRPC and HTTP status in one table."""

from __future__ import annotations

import enum


class Code(enum.Enum):
    """Stable error codes. Each value is (gRPC status number, HTTP status)."""

    INVALID_ARGUMENT = (3, 400)
    NOT_FOUND = (5, 404)
    PERMISSION_DENIED = (7, 403)
    TOO_LARGE = (8, 413)
    RATE_LIMITED = (8, 429)
    UNAVAILABLE = (14, 503)  # nothing was stored: resending is safe
    # The broker took the write but did not answer in time: it may be stored, or may still
    # be. gRPC's DEADLINE_EXCEEDED says just that; HTTP's 504 is a gateway's upstream that
    # did not answer. Safe to resend only under the same key (Idempotency-Key, producer
    # sequence), which stores it once.
    OUTCOME_UNKNOWN = (4, 504)
    INTERNAL = (13, 500)  # a failure retrying cannot fix: a bug, a broker refusing commands
    UNAUTHENTICATED = (16, 401)

    @property
    def grpc_code(self) -> int:
        return self.value[0]

    @property
    def http_status(self) -> int:
        return self.value[1]

    @property
    def slug(self) -> str:
        return self.name.lower()


class GatewayError(Exception):
    """A refusal the client can act on; `message` names the problem and is safe to show."""

    def __init__(
        self, code: Code, message: str, *, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # A short, bounded label for metrics and logs (e.g. "expired"), never user data.
        self.reason = reason or code.slug
        # Seconds the client should wait before trying again (a rate limit), if known.
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"GatewayError({self.code.name}, {self.message!r})"


def invalid(message: str) -> GatewayError:
    return GatewayError(Code.INVALID_ARGUMENT, message)


def unauthenticated(message: str, reason: str) -> GatewayError:
    return GatewayError(Code.UNAUTHENTICATED, message, reason=reason)


def denied(message: str) -> GatewayError:
    return GatewayError(Code.PERMISSION_DENIED, message)
