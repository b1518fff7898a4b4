"""Resume cursors: the SSE `id` and the gRPC `cursor`.

Every stored event gets a broker-wide sequence number, so one number says how far a client
got across all of its channels, and every subscriber of an event receives the same `id`
bytes. The epoch names one life of the broker's history: a cursor from another epoch means
that history was lost, and the client starts over from what is retained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FORM = re.compile(r"([0-9a-z]{1,32})-([0-9]{1,19})")
# Seqs are read exactly up to 2^53 everywhere: Redis scripts (Lua numbers are doubles; one
# near 2^63 made the Redis replay fail) and JavaScript. At a million entries a second a
# broker reaches it in 285 years.
MAX_SEQ = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Cursor:
    epoch: str
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}-{self.seq}"


def encode_cursor(epoch: str, seq: int) -> str:
    return f"{epoch}-{seq}"


def decode_cursor(text: str | None) -> Cursor | None:
    """Parse a cursor; None for an empty or malformed one (the client then starts live)."""
    if not text:
        return None
    match = _FORM.fullmatch(text.strip())
    if match is None or int(match.group(2)) > MAX_SEQ:
        return None
    return Cursor(match.group(1), int(match.group(2)))
