"""One stream message of the NATS broker: a batch's entries for one channel, and back.

The payload is one line per entry, "SEVERITY JSON" (the JSON line every reader sends, as
make_event encodes it, offset included), lines joined by "\\n" (JSON lines hold none). The
headers carry what a reader needs without parsing JSON: the first entry's channel offset,
the channel's previous message (seq and entry count) and the start of its life, so a
reader counts what a channel lost from the first message it still holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.core.broker_nats_subjects import LIFE, OFFSET, PREV, event_seq
from gateway.core.events import Entry, Event, encode_data


@dataclass(frozen=True, slots=True)
class Link:
    """Where a channel stands: its newest message (seq, entries; 0 0 when it holds none),
    the offset its next entry gets, and the first message of its life (0: none yet)."""

    seq: int = 0
    count: int = 0
    next_offset: int = 0
    life: int = 0


@dataclass(slots=True)
class Stored:
    """A message read back from the stream."""

    channel: str
    seq: int  # the stream's
    offset: int  # of its first entry
    prev: int  # the channel's previous message (0: it began a life)
    prev_count: int
    life: int  # the first message of this life
    lines: list[bytes]
    stored_at: float = 0.0  # when the stream stored it (the server's clock, Unix seconds)

    @property
    def count(self) -> int:
        return len(self.lines)

    def events(self) -> list[Event]:
        seq, offset, channel = self.seq, self.offset, self.channel
        out = []
        for i, line in enumerate(self.lines):
            severity, data = line.split(b" ", 1)
            out.append(Event(channel, offset + i, event_seq(seq, i), int(severity), data))
        return out

    def link(self) -> Link:
        return Link(self.seq, self.count, self.offset + self.count, self.life)


@dataclass(slots=True)
class Draft:
    """A message about to be published, kept with its entries' JSON lines so that once the
    stream stored it its events are built from them, not parsed back from the payload."""

    channel: str
    entries: Sequence[Entry]
    offset: int  # of its first entry
    data: list[bytes]
    payload: bytes
    headers: dict[str, str]

    def events(self, seq: int) -> list[Event]:
        """Its events, once the stream stored it as message `seq`."""
        channel, offset, first = self.channel, self.offset, event_seq(seq, 0)
        return [
            Event(channel, offset + i, first + i, entry.severity, data)
            for i, (entry, data) in enumerate(zip(self.entries, self.data, strict=True))
        ]


def encode(channel: str, entries: Sequence[Entry], link: Link) -> Draft:
    """The message after `link` on `channel`, holding `entries`."""
    offset = link.next_offset
    data = [encode_data(entry, offset + i) for i, entry in enumerate(entries)]
    payload = b"\n".join(
        [b"%d %b" % (entry.severity, line) for entry, line in zip(entries, data, strict=True)]
    )
    headers = {OFFSET: str(offset), PREV: f"{link.seq} {link.count}", LIFE: str(link.life)}
    return Draft(channel, entries, offset, data, payload, headers)


def decode(
    channel: str, seq: int, headers: Mapping[str, str] | None, data: bytes, stored_at: float = 0.0
) -> Stored:
    """A stored message; raises ValueError for one the gateway did not write."""
    if not headers or OFFSET not in headers:
        raise ValueError(f"message {seq} on {channel!r} was not written by a gateway")
    prev, prev_count = (int(x) for x in headers[PREV].split())
    life = int(headers[LIFE]) or seq
    offset = int(headers[OFFSET])
    return Stored(channel, seq, offset, prev, prev_count, life, data.split(b"\n"), stored_at)
