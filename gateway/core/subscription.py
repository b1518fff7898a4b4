"""One subscriber's state: what it follows, what it is owed, and where its bytes go."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar, Protocol

from gateway.core import sse
from gateway.core.broker import Gap
from gateway.core.channels import Pattern
from gateway.core.endings import End, last_frame
from gateway.core.events import Event

# Chunk of SSE bytes for the events of one run, filtered by a minimum severity; computed
# once per run and severity, then shared by every subscriber that asks for it.
ChunkFor = Callable[[int], bytes]


class Sink(Protocol):
    """Where an SSE subscription's bytes go (an HTTP connection)."""

    def write(self, data: bytes) -> None: ...

    def pending_bytes(self) -> int:
        """Bytes accepted by write() but not yet sent to the peer."""
        ...

    def sent_bytes(self) -> int:
        """Bytes the peer has taken so far (written, less what is pending)."""
        ...

    def abort(self) -> None:
        """Drop the connection now, discarding what is unsent."""
        ...


class Subscription:
    """Base: a set of patterns and a severity floor, replay first, then live."""

    transport: ClassVar[str] = ""  # the metrics label of the connections of this kind

    def __init__(
        self, sub_id: str, patterns: tuple[Pattern, ...], min_severity: int, owner: str
    ) -> None:
        self.id = sub_id
        self.patterns = patterns
        self.min_severity = min_severity
        self.owner = owner
        self.replaying = True
        self.held: list[Event] = []
        # The seq its replay brought it to (set by Hub.start): a live event at or below it
        # was sent already (a broker's live copy can arrive after the replay read it).
        self.after = 0
        self.done: asyncio.Future[End] = asyncio.get_running_loop().create_future()
        self.expiry: asyncio.TimerHandle | None = None

    def finish(self, reason: End) -> None:
        if not self.done.done():
            self.done.set_result(reason)

    def offer(self, events: list[Event], chunk_for: ChunkFor) -> bool:
        """Take a run of live events; True if the subscriber now has something to flush."""
        raise NotImplementedError

    def flush(self) -> None:
        """Send what offer() queued (once per loop turn)."""

    def start(self, epoch: bytes, last: int) -> None:
        """The replay, up to seq `last`, has been sent: send the live events held meanwhile
        that it did not cover, and switch to live delivery."""
        raise NotImplementedError

    def heartbeat(self, frame: bytes) -> None:
        """Keep the connection open through idle proxies (`frame` may carry a cursor)."""

    def close(self, reason: End) -> None:
        """Tell the client why (ENDINGS) and end the subscription."""
        raise NotImplementedError


class StreamSubscription(Subscription):
    """An SSE subscriber: receives shared, pre-encoded bytes, one write per loop turn."""

    transport = "sse"

    def __init__(
        self,
        sub_id: str,
        patterns: tuple[Pattern, ...],
        min_severity: int,
        owner: str,
        sink: Sink,
        max_buffer: int,
    ) -> None:
        super().__init__(sub_id, patterns, min_severity, owner)
        self.sink = sink
        self.max_buffer = max_buffer
        self.owed: list[bytes] = []
        self.last_word: End | None = None  # a close() that came during the replay
        self.held_bytes = 0
        self.sent_at_beat = -1  # sent_bytes() at the last heartbeat

    def offer(self, events: list[Event], chunk_for: ChunkFor) -> bool:
        if self.replaying:
            # Live events wait while the replay is sent, within the same bound as unsent
            # bytes: a client whose replay outlasts it resumes from its cursor instead.
            self.held.extend(events)
            self.held_bytes += sum(len(e.data) for e in events)
            if self.held_bytes > self.max_buffer:
                self.finish(End.SLOW_CONSUMER)
            return False
        chunk = chunk_for(self.min_severity)
        if not chunk:
            return False
        self.owed.append(chunk)
        return len(self.owed) == 1

    def flush(self) -> None:
        owed = self.owed
        data = owed[0] if len(owed) == 1 else b"".join(owed)
        owed.clear()
        self._send(data)

    def _send(self, data: bytes) -> None:
        if self.done.done():
            return
        # Slow-consumer policy: a write that would take the unsent bytes past the bound
        # drops the connection instead; the client reconnects with Last-Event-ID and
        # resumes from history. A connection with nothing unsent always takes the write:
        # what one loop turn owes it, so a burst alone never drops a client that reads.
        pending = self.sink.pending_bytes()
        if pending and pending + len(data) > self.max_buffer:
            self.sink.abort()
            self.finish(End.SLOW_CONSUMER)
            return
        self.sink.write(data)

    def start(self, epoch: bytes, last: int) -> None:
        data = sse.log_frames(epoch, (e for e in self.held if e.seq > last), self.min_severity)
        self.held = []
        self.held_bytes = 0
        self.replaying = False
        if data:
            self._send(data)
        if self.last_word is not None and not self.done.done():
            self.sink.write(last_frame(self.last_word))
            self.finish(self.last_word)

    def heartbeat(self, frame: bytes) -> None:
        # Until start() the handler may not have sent the response headers yet.
        if self.replaying:
            return
        # Bounded in time as well as bytes: a client that has taken nothing of what is
        # pending since the last heartbeat is gone or stuck; it resumes from its cursor.
        sent = self.sink.sent_bytes()
        if sent == self.sent_at_beat and self.sink.pending_bytes():
            self.sink.abort()
            self.finish(End.SLOW_CONSUMER)
            return
        self.sent_at_beat = sent
        self._send(frame)

    def close(self, reason: End) -> None:
        if self.done.done():
            return
        if self.replaying:
            # The response may not have begun: the event goes out right after the replay
            # (a token expiring as the stream starts still tells the client why).
            self.last_word = reason
            return
        self.sink.write(last_frame(reason))
        self.finish(reason)


class EventSubscription(Subscription):
    """A gRPC subscriber: receives events through a bounded queue."""

    transport = "grpc"

    def __init__(
        self, sub_id: str, patterns: tuple[Pattern, ...], min_severity: int, owner: str, limit: int
    ) -> None:
        super().__init__(sub_id, patterns, min_severity, owner)
        self.queue: asyncio.Queue[Event | Gap] = asyncio.Queue()
        self.limit = limit

    def offer(self, events: list[Event], chunk_for: ChunkFor) -> bool:
        if self.replaying:
            self.held.extend(events)  # within the queue's bound, as live events are
            if len(self.held) > self.limit:
                self.finish(End.SLOW_CONSUMER)
        else:
            self._put([e for e in events if e.severity >= self.min_severity])
        return False

    def _put(self, items: list[Event | Gap] | list[Event]) -> None:
        if self.queue.qsize() + len(items) > self.limit:
            self.finish(End.SLOW_CONSUMER)
            return
        for item in items:
            self.queue.put_nowait(item)

    def start(self, epoch: bytes, last: int) -> None:
        self._put([e for e in self.held if e.seq > last and e.severity >= self.min_severity])
        self.held = []
        self.replaying = False

    def close(self, reason: End) -> None:
        self.finish(reason)
