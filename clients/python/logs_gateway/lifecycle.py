"""Where a publisher is, and every decision that depends on it: one state, one owner.

IDLE -> CONNECTING -> STREAMING -> WAITING -> CONNECTING ...   (the connect loop)
any of those -> CLOSING (close(): what is buffered still goes) -> CLOSED
any but CLOSED -> FAILED (an error no retry can fix) -> CLOSED (close())
"""

from __future__ import annotations

import enum

from logs_gateway.errors import LogsGatewayError, PublisherClosed


class State(enum.Enum):
    """Where a publisher is (`Publisher.state`)."""

    IDLE = "idle"  # not started
    CONNECTING = "connecting"  # asking for a token, opening a stream
    STREAMING = "streaming"  # a stream is open: batches go, acks come
    WAITING = "waiting"  # between streams: a backoff, or the gateway's retry-after-ms
    CLOSING = "closing"  # close() was called: what is buffered goes, nothing more is taken
    CLOSED = "closed"  # close() has finished
    FAILED = "failed"  # stopped on an error no retry can fix; publish() raises it


_CONNECT_LOOP = (State.IDLE, State.CONNECTING, State.STREAMING, State.WAITING)


class Lifecycle:
    def __init__(self) -> None:
        self.state = State.IDLE
        self.failure: LogsGatewayError | None = None  # why it FAILED

    def step(self, state: State) -> None:
        """The connect loop's progress (CONNECTING, STREAMING, WAITING); once closing or
        failed the state stays: the loop then only drains what is left."""
        if self.state in _CONNECT_LOOP:
            self.state = state

    def admit(self) -> None:
        """Raise unless new entries may still be taken."""
        if self.failure is not None:
            raise self.failure
        if self.state in (State.CLOSING, State.CLOSED):
            raise PublisherClosed("the publisher is closed")

    @property
    def draining(self) -> bool:
        """close() was called: batches go at once, and streams end once nothing is left."""
        return self.state is State.CLOSING

    def close(self) -> None:
        if self.state is not State.FAILED:
            self.state = State.CLOSING

    def closed(self) -> None:
        self.state = State.CLOSED

    def fail(self, error: LogsGatewayError) -> None:
        self.state = State.FAILED
        self.failure = error
