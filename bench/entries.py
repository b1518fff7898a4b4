"""The entries the load generator publishes, built straight as wire bytes.

Every entry has a 200-byte message that starts with its send time in nanoseconds (19
digits), which subscribers read back for latency. Building a protobuf object per entry would
cost the load generator more than the gateway spends storing it, so a gRPC request is
assembled from pre-encoded pieces (protobuf fields may come in any order and repeat). The
same entry for nchan is the JSON line the gateway itself would send, so both servers carry
frames of the same size.
"""

from __future__ import annotations

import struct

import orjson

from gateway.core.events import format_time

MESSAGE_BYTES = 200
SEVERITY = 9  # info
SOURCE = "bench"
_PAD = b"x" * (MESSAGE_BYTES - 20)


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def message(now_ns: int) -> bytes:
    return b"%019d %b" % (now_ns, _PAD)


class GrpcEntries:
    """`LogEntry` and `PublishRequest` bytes for one channel (logs_gateway.v1 field numbers)."""

    def __init__(self, channel: str) -> None:
        head = field(1, channel.encode()) + b"\x11"  # channel, then time_unix_nano's tag
        body_tag = b"\x18" + varint(SEVERITY) + varint(5 << 3 | 2) + varint(MESSAGE_BYTES)
        source = field(9, SOURCE.encode())
        size = len(head) + 8 + len(body_tag) + MESSAGE_BYTES + len(source)
        # Every entry has the same length, so the whole item is one format string (any
        # byte of the channel, the lengths or the source may be a `%`: escaped).
        start = varint(3 << 3 | 2) + varint(size) + head
        self._format = _escaped(start) + b"%b" + _escaped(body_tag) + b"%019d "
        self._format += _PAD + _escaped(source)

    def entry(self, now_ns: int) -> bytes:
        """One `PublishRequest.entries` item (tag and length included)."""
        return self._format % (struct.pack("<Q", now_ns), now_ns)


def _escaped(data: bytes) -> bytes:
    return data.replace(b"%", b"%%")


def publish_request(producer: bytes, sequence: int, entries: list[bytes]) -> bytes:
    """A `PublishRequest`: `producer` is its pre-encoded producer_id field."""
    return producer + b"\x10" + varint(sequence) + b"".join(entries)


def nchan_entry(channel: str, offset: int, now_ns: int) -> bytes:
    """The JSON line the gateway would send for this entry (same fields, same order)."""
    return orjson.dumps(
        {
            "channel": channel,
            "offset": offset,
            "time": format_time(now_ns),
            "level": "info",
            "severity": SEVERITY,
            "message": message(now_ns).decode(),
            "source": SOURCE,
            "attributes": {},
        }
    )


def http_entry(channel: str, now_ns: int) -> bytes:
    """The body of a single-entry `POST /api/logs/publish` carrying the same message."""
    return b'{"channel":"%b","message":"%b","source":"%b"}' % (
        channel.encode(),
        message(now_ns),
        SOURCE.encode(),
    )


# An offset no entry reaches: rendered into a body, then marked for bench/post_load.c.
TEMPLATE_OFFSET = 987_654_321


def template(body: bytes, now_ns: int) -> bytes:
    """A POST body made from entry `TEMPLATE_OFFSET` sent at `now_ns` into a template of
    bench/post_load.c: the byte 1 where the entry's offset goes (nchan's bodies carry it),
    2 where its send time goes. Other fields (nchan's formatted time) keep their size."""
    marked = body.replace(b'"offset":%d,' % TEMPLATE_OFFSET, b'"offset":\x01,')
    return marked.replace(b'"message":"%019d ' % now_ns, b'"message":"\x02 ')


def http_batch(channel: str, now_ns: int, size: int) -> bytes:
    """A `POST /api/logs/publish` body of `size` such entries (`{"entries": [...]}`)."""
    return b'{"entries":[%b]}' % b",".join([http_entry(channel, now_ns)] * size)
