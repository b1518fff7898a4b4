"""How the NATS broker names things in JetStream: subjects, seqs, and its message headers.

A channel `logs:etl:ws1:wf.1` is the subject `{prefix}.logs.etl.ws1.wf%2E1`: each segment
one token, a `.` inside a segment (legal in our grammar, the token separator in NATS's)
written `%2E`. `%` is not in our segment alphabet, so the mapping is one to one, and our
wildcards `*` and `>` are NATS's own (a whole segment; `>` one or more at the end).

One stream message holds the entries of one batch for one channel (at most SLOTS of
them). An event's seq is `stream_seq * SLOTS + index`: one counter across all channels, in
the stream's order, so a cursor is exact; seqs are increasing but not dense. At 2^53
(MAX_SEQ) that leaves 2^43 messages: 2.7 years at 100,000 messages a second.
"""

from __future__ import annotations

from gateway.core.channels import Pattern

SLOTS = 1024  # most entries in one message; a seq's low 10 bits are the entry's place
ESCAPED_DOT = "%2E"

# Headers of a stored message (besides NATS's own Nats-Msg-Id and expected sequence).
OFFSET = "Lg-Offset"  # the channel offset of its first entry
PREV = "Lg-Prev"  # "SEQ COUNT": the channel's previous message and its entries (0 0: none)
LIFE = "Lg-Life"  # stream seq of the first message of the channel's current life (0: this)
# Headers NATS adds to a republished (live) message.
SEQUENCE = "Nats-Sequence"
SUBJECT = "Nats-Subject"
LAST_SEQUENCE = "Nats-Last-Sequence"  # the previous message's seq on the same subject


def channel_subject(prefix: str, channel: str) -> str:
    return prefix + "." + channel.replace(".", ESCAPED_DOT).replace(":", ".")


def pattern_subject(prefix: str, pattern: Pattern) -> str:
    """The subject filter that matches exactly the channels `pattern` matches."""
    return prefix + "." + ".".join(s.replace(".", ESCAPED_DOT) for s in pattern.segments)


def subject_channel(prefix: str, subject: str) -> str:
    """Inverse of channel_subject (`subject` under `prefix`)."""
    return subject[len(prefix) + 1 :].replace(".", ":").replace(ESCAPED_DOT, ".")


def event_seq(stream_seq: int, index: int) -> int:
    return stream_seq * SLOTS + index


def message_of(seq: int) -> tuple[int, int]:
    """The stream seq of the message holding event `seq`, and the event's place in it."""
    return divmod(seq, SLOTS)


def last_event(stream_seq: int, count: int) -> int:
    """The seq of a message's last event (0 for no message)."""
    return event_seq(stream_seq, count - 1) if stream_seq else 0
