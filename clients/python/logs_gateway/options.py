"""The publisher's settings and counters: what a caller passes in and reads back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict

import grpc

from logs_gateway.errors import LogsGatewayError

DEFAULT_TARGET = "127.0.0.1:50051"
# gRPC's default message limit (4 MiB), less room for the request's own fields.
MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 4096
MAX_PRODUCER_ID = 128
# The gateway remembers the last 1024 sequences of a producer; stay well inside that.
MAX_IN_FLIGHT = 512


@dataclass(frozen=True, slots=True)
class Options:
    """Tuning. The defaults suit a service logging a few thousand entries per second."""

    batch_size: int = 500  # entries per batch (the gateway accepts up to 1000 by default)
    batch_bytes: int = 1024 * 1024  # serialized bytes per batch
    linger: float = 0.02  # seconds a partial batch waits for more entries
    max_buffer: int = 10_000  # entries waiting or unacknowledged
    when_full: Literal["block", "drop"] = "block"  # publish() waits, or drops and counts
    max_in_flight: int = 32  # batches sent and not yet acknowledged
    ack_timeout: float = 30.0  # no ack for this long while some are due: reconnect
    max_backoff: float = 5.0  # longest pause between reconnects, seconds
    close_timeout: float = 30.0  # how long close() waits for acks by default
    # A ping this often (seconds) finds a connection that died silently (a NAT or balancer
    # forgetting it) while nothing is being sent; the gateway allows one every 5 s.
    keepalive: float = 20.0
    # Give up (Unavailable, naming the target and the cause) when no stream has been
    # accepted for this long; None keeps buffering and retrying for as long as it takes
    # (a service outliving a gateway restart), a number suits one-shot tools.
    connect_timeout: float | None = None

    def __post_init__(self) -> None:
        checks = {
            "batch_size": 1 <= self.batch_size <= 100_000,
            "batch_bytes": 1 <= self.batch_bytes <= MAX_REQUEST_BYTES,
            "linger": 0 <= self.linger <= 60,
            "max_buffer": self.max_buffer >= 1,
            "when_full": self.when_full in ("block", "drop"),
            "max_in_flight": 1 <= self.max_in_flight <= MAX_IN_FLIGHT,
            "ack_timeout": self.ack_timeout > 0,
            "max_backoff": self.max_backoff > 0,
            "close_timeout": self.close_timeout > 0,
            "keepalive": 5 <= self.keepalive <= 3600,
            "connect_timeout": self.connect_timeout is None or self.connect_timeout > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"Options.{name}={getattr(self, name)!r} is out of range")


class EntryFields(TypedDict, total=False):
    """Optional fields of a published entry (see entries.make_entry)."""

    level: str | int
    attributes: Mapping[str, object]
    source: str
    time_ns: int | None
    trace_id: bytes
    span_id: bytes


class Settings(TypedDict, total=False):
    """The keyword arguments of Publisher (and SyncPublisher) after token and target."""

    producer_id: str | None
    options: Options | None
    on_error: Callable[[LogsGatewayError], None] | None
    credentials: grpc.ChannelCredentials | None


@dataclass(frozen=True, slots=True)
class Stats:
    accepted: int  # entries taken into the buffer
    acked: int  # entries the gateway stored
    duplicates: int  # entries acknowledged again after a resend (stored once)
    failed: int  # entries refused by the gateway or given up on
    dropped: int  # entries not taken: buffer full with when_full="drop"
    buffered: int  # entries waiting or unacknowledged now
    reconnects: int
