"""Channel names and patterns (DESIGN §3).

A channel is `logs:{service}:{workspace}[:{resource}...]`. In a pattern `*` matches exactly
one segment and `>`, only as the last segment, matches one or more remaining segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.core.errors import invalid

MAX_SEGMENTS = 6
MAX_BYTES = 256
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _segments(text: str, what: str) -> list[str]:
    if not isinstance(text, str) or not text:
        raise invalid(f"{what} must be a non-empty string")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise invalid(f"{what} is longer than {MAX_BYTES} bytes")
    parts = text.split(":")
    if len(parts) > MAX_SEGMENTS:
        raise invalid(f"{what} {text!r} has more than {MAX_SEGMENTS} segments")
    return parts


def is_segment(text: str) -> bool:
    """Whether `text` is one literal channel segment (1-64 of A-Z a-z 0-9 _ . -)."""
    return _SEGMENT.fullmatch(text) is not None


def parse_channel(text: str) -> str:
    """Return `text` if it is a valid concrete channel name, else raise INVALID_ARGUMENT."""
    parts = _segments(text, "channel")
    if parts[0] != "logs":
        raise invalid(f"channel {text!r} must start with 'logs:'")
    if len(parts) < 3:
        raise invalid(f"channel {text!r} needs at least logs:{{service}}:{{workspace}}")
    for part in parts:
        if not _SEGMENT.fullmatch(part):
            raise invalid(
                f"channel {text!r}: segment {part!r} must be 1-64 characters of A-Z a-z 0-9 _ . -"
            )
    return text


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed channel pattern; a concrete channel is a pattern without wildcards."""

    text: str
    segments: tuple[str, ...]

    def matches(self, channel: str) -> bool:
        """Whether the concrete channel `channel` is matched by this pattern."""
        return _match(self.segments, tuple(channel.split(":")))

    def covers(self, other: Pattern) -> bool:
        """Whether every channel `other` can match is also matched by this pattern."""
        return _match(self.segments, other.segments)


def _match(pattern: tuple[str, ...], target: tuple[str, ...]) -> bool:
    """Segment-wise match; `target` may itself hold wildcards (then: coverage)."""
    for i, seg in enumerate(pattern):
        if seg == ">":
            return len(target) > i
        if i >= len(target):
            return False
        have = target[i]
        if have == ">" or seg not in ("*", have):
            return False
    return len(target) == len(pattern)


def parse_pattern(text: str) -> Pattern:
    """Parse a channel or pattern, raising INVALID_ARGUMENT that names the broken rule."""
    parts = _segments(text, "channel pattern")
    for i, part in enumerate(parts):
        if part == ">" and i != len(parts) - 1:
            raise invalid(f"pattern {text!r}: '>' may only be the last segment")
        if part not in ("*", ">") and not _SEGMENT.fullmatch(part):
            raise invalid(
                f"pattern {text!r}: segment {part!r} must be '*', '>' or 1-64 characters "
                "of A-Z a-z 0-9 _ . -"
            )
    return Pattern(text, tuple(parts))


def channel_pattern(text: str) -> Pattern:
    """A valid concrete channel as the Pattern that matches only it (INVALID_ARGUMENT
    otherwise): one check of the name, where parse_pattern would check it again."""
    return Pattern(parse_channel(text), tuple(text.split(":")))


def parse_patterns(texts: list[str] | tuple[str, ...]) -> tuple[Pattern, ...]:
    return tuple(parse_pattern(t) for t in texts)


def allowed(granted: tuple[Pattern, ...], wanted: Pattern) -> bool:
    """Whether `wanted` (a channel or pattern) lies wholly within one granted pattern."""
    return any(g.covers(wanted) for g in granted)
