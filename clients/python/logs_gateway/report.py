"""Where a publisher's errors go: a refused entry (PermissionDenied, InvalidArgument,
EntryTooLarge, BatchTooLarge) and a fatal error reach `on_error` when one is given;
otherwise the first is kept for the next flush() or close() to raise, its `also_failed`
counting the others."""

from __future__ import annotations

import logging
from collections.abc import Callable

from logs_gateway.errors import RESOURCE_EXHAUSTED, BatchTooLarge, LogsGatewayError, error_for
from logs_gateway.v1 import logs_pb2 as pb

log = logging.getLogger("logs_gateway.publisher")


class ErrorReport:
    def __init__(self, on_error: Callable[[LogsGatewayError], None] | None) -> None:
        self._on_error = on_error
        self._first: LogsGatewayError | None = None
        self._count = 0  # errors since the first was last raised

    def add(self, error: LogsGatewayError) -> None:
        if self._on_error is None:
            self._first = self._first or error
            self._count += 1
            return
        try:
            self._on_error(error)
        except Exception:
            log.exception("on_error callback failed")

    def raise_first(self) -> None:
        """Raise the first error not raised yet, if any."""
        error, self._first = self._first, None
        if error is not None:
            error.also_failed = self._count - 1
            self._count = 0
            raise error


def entry_errors(pairs: list[tuple[pb.LogEntry, pb.EntryResult]]) -> list[LogsGatewayError]:
    """The errors of refused entries. Results alike for every entry of a batch of several
    (the same RESOURCE_EXHAUSTED message: a per-entry one names its entry's index) are the
    gateway refusing the batch as a whole: BatchTooLarge."""
    refused = [(entry, result) for entry, result in pairs if result.code]
    whole = (
        len(pairs) > 1
        and len(refused) == len(pairs)
        and all(r.code == RESOURCE_EXHAUSTED for _, r in refused)
        and len({r.message for _, r in refused}) == 1
    )
    if whole:
        return [BatchTooLarge(r.message, entry=e) for e, r in refused]
    return [error_for(r.code, r.message, e) for e, r in refused]
