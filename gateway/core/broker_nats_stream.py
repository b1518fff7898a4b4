"""The JetStream stream the NATS broker keeps its history in: created at start, or checked.

What the settings say a stream must be (StreamSpec) is compared with what exists; a
difference that would break a promise (fewer replicas than asked, another retention, a
memory store) refuses the start and names the setting, rather than running on a stream
that does not do what the flags say. Nothing is changed behind an operator's back:
`nats stream edit` (or deleting the stream, which is a new epoch) is theirs to run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    RePublish,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

MAX_MSG_BYTES = 8 * 1024 * 1024  # one message: a batch's entries for one channel


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """The stream the settings ask for."""

    name: str  # also the subject prefix: subjects `{name}.logs.>`
    replicas: int
    max_msgs_per_subject: int  # --history-entries
    max_age: float  # --history-seconds
    max_bytes: int  # --max-history-bytes
    duplicate_window: float  # --dedup-seconds (at most max_age: NATS's rule)

    @property
    def live_prefix(self) -> str:
        """Where the stream republishes each stored message for live delivery."""
        return f"{self.name}-live"

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description="logs-gateway channel history (one subject per channel)",
            subjects=[f"{self.name}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            max_msgs_per_subject=self.max_msgs_per_subject,
            max_age=self.max_age,
            max_bytes=self.max_bytes,
            max_msg_size=MAX_MSG_BYTES,
            discard=DiscardPolicy.OLD,
            duplicate_window=min(self.duplicate_window, self.max_age),
            republish=RePublish(src=f"{self.name}.>", dest=f"{self.live_prefix}.>"),
            allow_direct=False,  # every read at the leader: a follower may lag an ack
        )

    def differences(self, found: StreamConfig) -> list[str]:
        """What of the stream found contradicts the settings, one phrase each."""
        want = self.config()
        rows = [
            ("subjects", found.subjects, want.subjects, "the stream name (--nats-stream)"),
            ("storage", found.storage, want.storage, "file storage"),
            ("retention", found.retention, want.retention, "limits retention"),
            ("discard", found.discard, want.discard, "discard old"),
            ("replicas", found.num_replicas, want.num_replicas, "--nats-replicas"),
            ("max_msgs_per_subject", found.max_msgs_per_subject, want.max_msgs_per_subject,
             "--history-entries"),
            ("max_age", _seconds(found.max_age), _seconds(want.max_age), "--history-seconds"),
            ("max_bytes", found.max_bytes, want.max_bytes, "--max-history-bytes"),
            ("duplicate_window", _seconds(found.duplicate_window),
             _seconds(want.duplicate_window), "--dedup-seconds"),
            ("republish", _republish(found.republish), _republish(want.republish),
             "live delivery"),
        ]  # fmt: skip
        return [
            f"{name} is {have!r} where {flag} asks for {wanted!r}"
            for name, have, wanted, flag in rows
            if have != wanted
        ]


class StreamMismatch(ValueError):
    """The stream exists with settings that contradict the gateway's."""


async def ensure(js: JetStreamContext, spec: StreamSpec) -> None:
    """Create the stream if it does not exist; raises StreamMismatch naming each
    difference when it exists with other settings."""
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(spec.config())
        return
    problems = spec.differences(info.config)
    if problems:
        raise StreamMismatch(
            f"JetStream stream {spec.name!r} contradicts the settings: "
            + "; ".join(problems)
            + " (change the flags, or the stream with `nats stream edit`)"
        )


def epoch_of(created: str) -> str:
    """The stream's identity, from its creation time (RFC 3339, as JetStream reports it;
    base 36 of its microseconds): a stream deleted and created again has a new epoch, so
    every older cursor reads as a reset."""
    whole, _, fraction = created.rstrip("Z").partition(".")
    stamp = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.UTC)
    micros = int(stamp.timestamp()) * 1_000_000 + int(fraction[:6].ljust(6, "0"))
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while micros:
        micros, rest = divmod(micros, 36)
        out = digits[rest] + out
    return out or "0"


def _seconds(value: float | None) -> float:
    return float(round(value or 0.0, 3))


def _republish(value: RePublish | None) -> tuple[str | None, str | None] | None:
    return (value.src, value.dest) if value is not None else None
