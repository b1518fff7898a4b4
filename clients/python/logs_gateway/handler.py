"""LogsHandler: a standard logging.Handler that streams records to a gateway channel.

    logging.getLogger().addHandler(LogsHandler("logs:etl:ws1:wf1", token))

emit() never waits on the network: records go into the publisher's buffer, and with the
buffer full they are dropped and counted (`dropped`), so a logging burst or a gateway outage
never stalls the service. Entries the gateway refuses (a bad token or channel) are counted in
`failed`, and the first error of each kind is printed on stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from logs_gateway.entries import attribute
from logs_gateway.errors import LogsGatewayError
from logs_gateway.options import DEFAULT_TARGET, Options
from logs_gateway.sync import SyncPublisher
from logs_gateway.tokens import TokenSource
from logs_gateway.v1 import logs_pb2 as pb

# Records of these loggers are never sent: the SDK's and gRPC's own logs would loop back.
OWN_LOGGERS = ("logs_gateway", "grpc")
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_EXCEPTIONS = logging.Formatter()
# Records buffered while the gateway is away, and how long flush/close wait for their acks.
DEFAULT_OPTIONS = Options(max_buffer=100_000, when_full="drop", close_timeout=10.0)


def record_severity(levelno: int) -> int:
    """OpenTelemetry severity of a logging level: DEBUG 5, INFO 9, WARNING 13, ERROR 17,
    CRITICAL 21, and levels in between on the numbers in between."""
    number = 1 + (levelno // 10) * 4 + (levelno % 10) * 4 // 10
    return max(1, min(24, number))


def record_attributes(record: logging.LogRecord) -> dict[str, object]:
    """Where the record came from, its exception text, and its `extra=` fields."""
    attributes: dict[str, object] = {
        "logger": record.name,
        "function": record.funcName,
        "line": record.lineno,
        "thread": record.threadName or "",
    }
    if record.exc_info:
        record.exc_text = record.exc_text or _EXCEPTIONS.formatException(record.exc_info)
    if record.exc_text:
        attributes["exception"] = record.exc_text
        if record.exc_info and record.exc_info[0] is not None:
            attributes["exception_type"] = record.exc_info[0].__name__
    if record.stack_info:
        attributes["stack"] = record.stack_info
    attributes.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
    return attributes


class LogsHandler(logging.Handler):
    """Sends each record to `channel` as one entry (level, message, logger name, exception
    text and `extra=` attributes). A Formatter, if set, formats the message."""

    def __init__(
        self,
        channel: str,
        token: TokenSource,
        target: str = DEFAULT_TARGET,
        *,
        level: int = logging.NOTSET,
        source: str = "",
        options: Options | None = None,
    ) -> None:
        super().__init__(level)
        self.channel = channel
        self.source = source
        self._refused = 0
        self._printed: set[str] = set()
        self.options = options or DEFAULT_OPTIONS
        self.publisher = SyncPublisher(token, target, options=self.options, on_error=self._on_error)
        self._closed = False

    @property
    def dropped(self) -> int:
        """Records not sent: the buffer was full, or the publisher had given up."""
        return self.publisher.stats.dropped + self._refused

    @property
    def failed(self) -> int:
        """Records the gateway refused, or that were given up on (see stderr for why)."""
        return self.publisher.stats.failed

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(OWN_LOGGERS):
            return
        try:
            self.publisher.publish_entry_nowait(self.entry(record))
        except LogsGatewayError:
            self._refused += 1
        except Exception:
            self.handleError(record)

    def entry(self, record: logging.LogRecord) -> pb.LogEntry:
        message = self.format(record) if self.formatter else record.getMessage()
        return pb.LogEntry(
            channel=self.channel,
            body=message,
            severity_number=record_severity(record.levelno),  # type: ignore[arg-type]
            attributes={k: attribute(v) for k, v in record_attributes(record).items()},
            source=self.source,
            time_unix_nano=int(record.created * 1e9),
        )

    def flush(self) -> None:
        """Wait until the records so far are acknowledged (at most options.close_timeout)."""
        if not self._closed:
            self._quietly(lambda: self.publisher.flush(self.options.close_timeout))

    def close(self) -> None:
        """Flush and disconnect. logging.shutdown() calls flush() and close() at exit, and
        may do so after an explicit close(): both are then no-ops."""
        if not self._closed:
            self._closed = True
            self._quietly(lambda: self.publisher.close(self.options.close_timeout))
        super().close()

    def _quietly(self, action: Callable[[], None]) -> None:
        try:
            action()
        except LogsGatewayError as e:
            self._on_error(e)

    def _on_error(self, error: LogsGatewayError) -> None:
        kind = type(error).__name__
        if kind not in self._printed:
            self._printed.add(kind)
            print(f"logs-gateway handler: {kind}: {error} (more are counted)", file=sys.stderr)
