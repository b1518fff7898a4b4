"""Every way a stream ends, and what each means on every side: the one table.

A subscription ends exactly once, with an `End` (its `done` result). The hub, both
servicers and the metrics read what to do from ENDINGS; nothing else decides how a stream
ends or what a client is told. The reasons are stable names: they are the `reason` of the
last SSE event, the metric label of `streams_ended_total` and the log line's `reason`.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from gateway.core import sse
from gateway.core.errors import Code, GatewayError

RECONNECT_MS = 1000  # how soon a client told to reconnect should


class End(enum.StrEnum):
    CLOSED = "closed"  # the client left (or the call was cancelled)
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (a reason, not a secret): its `exp` passed
    DRAINING = "draining"  # the gateway is stopping
    RESYNC = "resync"  # live delivery had to skip events: resume from history
    SLOW_CONSUMER = "slow_consumer"  # it did not take its bytes in time
    ERROR = "error"  # the gateway failed serving it


@dataclass(frozen=True, slots=True)
class Ending:
    """What one reason means: the last SSE event (None: the connection just ends), the gRPC
    status (None: the call ends OK), the message both carry, and the log level."""

    sse_event: str | None
    code: Code | None
    message: str
    log_level: int
    reconnect: bool = False  # whether the SSE event tells the client when to reconnect


ENDINGS = {
    End.CLOSED: Ending(None, None, "the client closed the stream", logging.DEBUG),
    End.TOKEN_EXPIRED: Ending(
        "error", Code.UNAUTHENTICATED, "token expired; reconnect", logging.INFO
    ),
    End.DRAINING: Ending(
        "shutdown", Code.UNAVAILABLE, "server draining; reconnect", logging.INFO, True
    ),
    End.RESYNC: Ending(
        "shutdown",
        Code.UNAVAILABLE,
        "live feed interrupted; reconnect to resume",
        logging.WARNING,
        True,
    ),
    End.SLOW_CONSUMER: Ending(
        None,
        Code.UNAVAILABLE,
        "stream ended: slow_consumer (it did not take its data in time); resume from the cursor",
        logging.INFO,
    ),
    End.ERROR: Ending("error", Code.INTERNAL, "the gateway failed; reconnect", logging.ERROR),
}


def last_frame(reason: End) -> bytes:
    """The SSE event that ends a stream for `reason` (empty when none is sent)."""
    ending = ENDINGS[reason]
    if ending.sse_event is None:
        return b""
    data: dict[str, object] = {"reason": reason.value, "message": ending.message}
    if ending.reconnect:
        data["retry_ms"] = RECONNECT_MS
    return sse.frame(ending.sse_event, data)


def grpc_error(reason: End) -> GatewayError | None:
    """The status a gRPC stream ends with for `reason` (None: it ends OK)."""
    ending = ENDINGS[reason]
    return None if ending.code is None else GatewayError(ending.code, ending.message)
