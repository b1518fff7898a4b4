"""The keys that make a resend safe, as the broker's DedupKey: a gRPC producer's
(producer_id, sequence) and an HTTP request's `Idempotency-Key`.

Each is scoped to the token's subject, in a name space of its own: a tenant that picks
another's producer id or key can neither have its batches answered as the other's
duplicates (and dropped) nor push the other's out of their de-duplication window.

The IETF httpapi draft's header names one request, so that a client which got no answer,
or OUTCOME_UNKNOWN, can send it again and have it stored once. It takes the gRPC producer
keys' mechanism and window: the producer is the token's subject, the sequence a 63-bit
digest of the key and the request's content. A subject's latest `--dedup-batches` keyed
requests are recognised, each for `--dedup-seconds`; a resend past that is stored again.

The same key with another content is another request, stored as such: it cannot be given
the first request's answer for entries it did not send, nor be dropped as a duplicate. (The
draft's 422 for it would need every broker to keep a digest beside its de-duplication
record; this needs nothing more of them.)
"""

from __future__ import annotations

import hashlib
import re

from gateway.core.broker import DedupKey
from gateway.core.errors import invalid

HEADER = "Idempotency-Key"
MAX_KEY = 128
_CHARS = rf"[A-Za-z0-9._~:+/=-]{{1,{MAX_KEY}}}"
# Bare (as most clients send it) or as the draft's Structured Field string, in quotes.
_KEY = re.compile(rf"({_CHARS})|\"({_CHARS})\"")


def producer_key(subject: str, producer_id: str, sequence: int) -> DedupKey:
    """The DedupKey of a gRPC batch; the subject's length keeps (subject, id) pairs apart."""
    return f"producer:{len(subject)}:{subject}:{producer_id}", sequence


def request_key(subject: str, header: str, content: bytes) -> DedupKey:
    """The DedupKey of a request sent with `Idempotency-Key: header` by a token of
    `subject`; `content` is what the request asks to store (its body, inflated)."""
    match = _KEY.fullmatch(header)
    if match is None:
        raise invalid(
            f"{HEADER} must be 1-{MAX_KEY} characters of A-Z a-z 0-9 - _ . : ~ + / =, "
            "bare or in double quotes"
        )
    digest = hashlib.blake2b(digest_size=8)
    digest.update((match.group(1) or match.group(2)).encode())
    digest.update(b" ")  # never in a key: the key and the content cannot run together
    digest.update(content)
    return f"key:{subject}", int.from_bytes(digest.digest()) >> 1
