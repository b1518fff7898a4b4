"""Typed errors a caller can act on, one class per gRPC status the gateway answers with.

The gateway reports a refused entry in its batch's ack (a status code number and a message)
and a refused stream with the call's status; both end up as one of these classes.
"""

from __future__ import annotations

from logs_gateway.v1 import logs_pb2 as pb

# gRPC status numbers, as carried in EntryResult.code.
INVALID_ARGUMENT = 3
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14
UNAUTHENTICATED = 16


class LogsGatewayError(Exception):
    """Base class. `code` is the gRPC status number (0 when the SDK itself decided)."""

    code = 0

    def __init__(self, message: str, *, entry: pb.LogEntry | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The refused entry, so the caller can log it, fix it or send it elsewhere.
        self.entry = entry
        # How many other entries failed in the same reporting period (see Publisher.flush).
        self.also_failed = 0

    @property
    def channel(self) -> str:
        return self.entry.channel if self.entry is not None else ""


class Unauthenticated(LogsGatewayError):
    """The token is missing, malformed, expired or signed with a key the gateway refuses."""

    code = UNAUTHENTICATED


class PermissionDenied(LogsGatewayError):
    """The channel is outside the token's publish patterns; `channel` names it."""

    code = PERMISSION_DENIED


class InvalidArgument(LogsGatewayError):
    """An entry or a request breaks a rule (bad channel name, empty message, bad field or
    parameter); the message names the rule."""

    code = INVALID_ARGUMENT


class EntryTooLarge(LogsGatewayError):
    """The entry is over the gateway's size limits: its entry limit, or alone in a request
    over its gRPC message limit."""

    code = RESOURCE_EXHAUSTED


class BatchTooLarge(EntryTooLarge):
    """The gateway refused a whole batch for its number of entries (--max-batch-entries);
    lower Options.batch_size to at most the number the message names."""


class Unavailable(LogsGatewayError):
    """The gateway could not be reached, or is draining."""

    code = UNAVAILABLE


class PublishTimeout(LogsGatewayError, TimeoutError):
    """flush() or close() gave up waiting; `pending` entries were not acknowledged."""

    def __init__(self, message: str, pending: int) -> None:
        super().__init__(message)
        self.pending = pending


class PublisherClosed(LogsGatewayError):
    """publish() after close()."""


class PublisherFailed(LogsGatewayError):
    """The publisher stopped on an error it did not expect (a bug, or a token source that
    raised); `__cause__` holds that error, logged with its traceback when it happened."""


class ProtocolError(LogsGatewayError):
    """The gateway answered out of turn: an ack for a batch not next in line, or with
    fewer or more results than the batch has entries. Nothing of it is counted as stored."""


_BY_CODE: dict[int, type[LogsGatewayError]] = {
    cls.code: cls for cls in (Unauthenticated, PermissionDenied, InvalidArgument, EntryTooLarge)
} | {UNAVAILABLE: Unavailable}


def error_for(code: int, message: str, entry: pb.LogEntry | None = None) -> LogsGatewayError:
    """The exception for a status code; a per-entry message gains the channel if it lacks it."""
    if entry is not None and entry.channel and entry.channel not in message:
        message = f"{message} (channel {entry.channel!r})"
    cls = _BY_CODE.get(code, LogsGatewayError)
    error = cls(message, entry=entry)
    if cls is LogsGatewayError:
        error.code = code
    return error
