"""The retry table: what an ended Publish stream calls for, by its status code and whether
the gateway sent `retry-after-ms`; and the count of refusals that gives up on a token.

- rate limited (RESOURCE_EXHAUSTED with `retry-after-ms`): wait that long, resend;
- unreachable, draining, connection lost (UNAVAILABLE; CANCELLED by a gateway stopping
  past its grace), outcome unknown (DEADLINE_EXCEEDED: the broker did not answer in time):
  reconnect with backoff, resend (the same sequence: stored once);
- token refused (UNAUTHENTICATED): ask the token source again and reconnect at once; a
  token refused twice, or MAX_REFUSALS refusals in a row, fails the publisher;
- message over the gateway's limit (RESOURCE_EXHAUSTED without `retry-after-ms`, gRPC's own
  size refusal): the batch is found (suspects go one at a time), split in halves and resent;
  a lone entry still too large fails with EntryTooLarge and the entries after it go on;
- anything else cannot succeed by resending: every entry fails with the status's error.
"""

from __future__ import annotations

import enum

import grpc

from logs_gateway.errors import Unauthenticated

# A token refused this many times in a row (each time asked again) is given up on.
MAX_REFUSALS = 3


class Step(enum.Enum):
    """What an ended stream calls for."""

    WAIT_HINT = "wait the gateway's retry-after-ms, then resend"
    RECONNECT = "reconnect after a backoff, then resend"
    REFRESH = "ask the token source again, reconnect at once"
    SPLIT = "find the batch over the message limit, split it, resend"
    FAIL = "fail every entry: resending cannot succeed"


_Code = grpc.StatusCode
# The one retry table: (a stream's status code, whether `retry-after-ms` came with it).
RETRY: dict[tuple[grpc.StatusCode, bool], Step] = {
    (_Code.RESOURCE_EXHAUSTED, True): Step.WAIT_HINT,  # over the token's publish rate
    (_Code.RESOURCE_EXHAUSTED, False): Step.SPLIT,  # gRPC's "message larger than max"
    (_Code.UNAVAILABLE, True): Step.WAIT_HINT,
    (_Code.UNAVAILABLE, False): Step.RECONNECT,  # unreachable, draining, connection lost
    (_Code.CANCELLED, False): Step.RECONNECT,  # the gateway cancelled it (stopping past grace)
    # The gateway's broker did not answer in time: the batch may be stored. Resent under
    # its own sequence, it is stored once.
    (_Code.DEADLINE_EXCEEDED, False): Step.RECONNECT,
    (_Code.UNAUTHENTICATED, False): Step.REFRESH,  # expired on an open stream, or refused
}


def step_for(code: grpc.StatusCode, retry_after: float, write_failed: bool = False) -> Step:
    """RETRY's answer; INTERNAL after a failed write is the client's own status standing
    in for the gateway's, which grpc lost (grpc/grpc#36066): a reconnect finds out."""
    if code is _Code.INTERNAL and write_failed:
        return Step.RECONNECT
    return RETRY.get((code, retry_after > 0), Step.FAIL)


def retry_after(error: grpc.aio.AioRpcError) -> float:
    """The gateway's `retry-after-ms` hint (sent with RESOURCE_EXHAUSTED when a token
    publishes over its rate), in seconds; 0 without one."""
    hint = dict(error.trailing_metadata() or ()).get("retry-after-ms", "")
    return min(int(hint), 60_000) / 1000 if isinstance(hint, str) and hint.isdigit() else 0.0


def last_cause(details: str) -> str:
    """The innermost cause of a gRPC connect failure ("failed to connect to all addresses;
    last error: ...: Connection refused" -> "connection refused"), for a readable line."""
    cause = details.rpartition(": ")[2] or details
    return cause[:1].lower() + cause[1:]


class Refusals:
    """Consecutive refusals of the token. The source is asked again after each; a token
    refused twice, or MAX_REFUSALS refusals in a row, is given up on."""

    def __init__(self) -> None:
        self.count = 0
        self.token = ""
        self.detail = ""

    def add(self, token: str, detail: str) -> None:
        self.count += 1
        self.token = token
        self.detail = detail

    def check(self, token: str) -> None:
        if self.count and (token == self.token or self.count >= MAX_REFUSALS):
            raise Unauthenticated(f"the gateway refused the token: {self.detail}")

    def clear(self) -> None:
        self.count = 0
