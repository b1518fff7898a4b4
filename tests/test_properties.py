"""Property-based tests (hypothesis) of the pure parsers and encoders every request goes
through: channel names, patterns and rights, resume cursors, and the SSE encoding.

Each property holds for any input, including text no honest client sends: line breaks of
every kind, NUL, lone surrogates, huge values. The other side (every valid input is
accepted, each broken rule refused by name) is in tests/test_properties_rules.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TypeVar

from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core import sse
from gateway.core.channels import MAX_BYTES, MAX_SEGMENTS, Pattern, parse_channel, parse_pattern
from gateway.core.cursor import MAX_SEQ, Cursor, decode_cursor, encode_cursor
from gateway.core.errors import Code, GatewayError
from gateway.core.events import MAX_SEVERITY, Entry, make_event
from gateway.core.ingest import check_entry

settings.register_profile(
    "gateway", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.load_profile("gateway")

# What ends a line for an SSE parser (CR, LF), plus NUL, which makes parsers drop an `id`.
SSE_BREAKS = "\r\n\0"
# What else Python's str.splitlines ends a line on, which naive clients split with.
SPLITLINES_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# What a field (event name, id) loses on its way into a frame.
BREAKS = SSE_BREAKS + SPLITLINES_BREAKS


# Pieces of forged frames, and what no UTF-8 encoder takes.
FORGERIES = ("\r\n\r\n", "\n\n", "event: ", "data: ", "id: ", ":")
LONE_SURROGATES = ("\ud800", "\udbff", "\udfff")


def hostile(chars: st.SearchStrategy[str], extra: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Text dense in what tries to break a frame out of its line, among any of `chars`."""
    pieces = st.sampled_from([*SSE_BREAKS, *SPLITLINES_BREAKS, *FORGERIES, *extra])
    return st.lists(st.one_of(pieces, chars), max_size=40).map("".join)


# Every code point, lone surrogates included (hypothesis leaves those out by default).
ANY_CHAR = st.characters(exclude_categories=())
ANY_TEXT = st.one_of(st.text(ANY_CHAR, max_size=200), hostile(ANY_CHAR, LONE_SURROGATES))
# Valid Unicode only: what the strings the gateway builds itself can hold.
UNICODE_CHAR = st.characters(codec="utf-8")
UNICODE_TEXT = st.one_of(st.text(UNICODE_CHAR, max_size=200), hostile(UNICODE_CHAR))
SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CURSOR = re.compile(r"[0-9a-z]{1,32}-[0-9]{1,19}")
MAX_ENTRY_BYTES = 64 * 1024
T = TypeVar("T")


# -- channels and patterns -------------------------------------------------------------


def channel_text() -> st.SearchStrategy[str]:
    """Strings near the channel grammar: valid segments, wildcards and junk, joined by ':'."""
    segment = st.one_of(
        st.from_regex(SEGMENT, fullmatch=True),
        st.sampled_from(["logs", "*", ">", "", " ", "..", "a/b", "%2F", "é"]),
        ANY_TEXT,
    )
    return st.lists(segment, min_size=1, max_size=8).map(":".join)


def refused_as_invalid(parse: Callable[[str], object], text: str) -> bool:
    """True if `parse` refused `text` with INVALID_ARGUMENT; False if it accepted it."""
    error = refusal(parse, text)
    assert error is None or (error.code is Code.INVALID_ARGUMENT and error.message)
    return error is not None


def refusal(check: Callable[[T], object], value: T) -> GatewayError | None:
    """The GatewayError `check(value)` raised, if any; any other exception escapes."""
    try:
        check(value)
    except GatewayError as e:
        return e
    return None


@given(st.one_of(channel_text(), ANY_TEXT))
def test_a_channel_is_accepted_only_if_it_follows_every_rule(text: str) -> None:
    if refused_as_invalid(parse_channel, text):
        return
    parts = text.split(":")
    assert parts[0] == "logs" and 3 <= len(parts) <= MAX_SEGMENTS
    assert all(SEGMENT.fullmatch(p) for p in parts)
    assert len(text.encode()) <= MAX_BYTES


@given(st.one_of(channel_text(), ANY_TEXT))
def test_a_pattern_is_accepted_only_if_it_follows_every_rule(text: str) -> None:
    if refused_as_invalid(parse_pattern, text):
        return
    pattern = parse_pattern(text)
    assert ":".join(pattern.segments) == text and len(pattern.segments) <= MAX_SEGMENTS
    assert all(s in ("*", ">") or SEGMENT.fullmatch(s) for s in pattern.segments)
    assert ">" not in pattern.segments[:-1]


def patterns(literal: bool = False) -> st.SearchStrategy[Pattern]:
    """Small patterns over a tiny alphabet, so that overlaps are common."""
    alphabet = ["a", "b", "c"] if literal else ["a", "b", "c", "*", ">"]
    tails = st.lists(st.sampled_from(alphabet), min_size=1, max_size=MAX_SEGMENTS - 1)
    valid = tails.filter(lambda t: ">" not in t[:-1])
    return valid.map(lambda tail: parse_pattern(":".join(["logs", *tail])))


def instances(pattern: Pattern) -> list[str]:
    """Concrete channels `pattern` matches, its wildcards filled with a fresh segment `q`
    (`>` with one and with two segments): a pattern matches all of them only if it covers
    every channel `pattern` can match."""
    filled = ["q" if s == "*" else s for s in pattern.segments]
    if filled[-1] != ">":
        return [":".join(filled)]
    return [":".join([*filled[:-1], "q"]), ":".join([*filled[:-1], "q", "q"])]


@given(patterns(), patterns(), patterns(literal=True))
def test_coverage_is_sound(a: Pattern, b: Pattern, c: Pattern) -> None:
    """A right that covers a wanted pattern also reads every channel that pattern reads."""
    if a.covers(b) and b.matches(c.text):
        assert a.matches(c.text)


@given(patterns(), patterns())
def test_coverage_is_complete(a: Pattern, b: Pattern) -> None:
    assert a.covers(b) == all(a.matches(channel) for channel in instances(b))


@given(patterns(), patterns(literal=True))
def test_matching_a_channel_is_covering_it(a: Pattern, c: Pattern) -> None:
    assert a.matches(c.text) == a.covers(c)


@given(patterns(), patterns(literal=True))
def test_a_trailing_wildcard_stands_for_one_segment_or_more_never_none(
    a: Pattern, c: Pattern
) -> None:
    """`logs:etl:>` reads `logs:etl:x`, never `logs:etl` itself: a right of `x:>` must not
    reach the channel `x` (coverage and matching agree with each other, so this is the
    property that pins them both to the grammar)."""
    if a.segments[-1] == ">" and a.matches(c.text):
        assert len(c.segments) >= len(a.segments)


# -- cursors ---------------------------------------------------------------------------


@given(st.one_of(ANY_TEXT, st.from_regex(CURSOR, fullmatch=True), st.just("a-" + "9" * 19)))
def test_any_text_decodes_to_a_cursor_or_none_never_an_error(text: str) -> None:
    cursor = decode_cursor(text)
    if cursor is not None:
        assert cursor.epoch == text.strip().split("-")[0]
        assert decode_cursor(str(cursor)) == cursor
        assert 0 <= cursor.seq <= MAX_SEQ, "a seq must be exact in Redis scripts and JavaScript"


@given(st.from_regex(r"[0-9a-z]{1,32}", fullmatch=True), st.integers(0, MAX_SEQ))
def test_cursor_round_trip(epoch: str, seq: int) -> None:
    assert decode_cursor(encode_cursor(epoch, seq)) == Cursor(epoch, seq)


# -- SSE encoding ----------------------------------------------------------------------


def parse_sse(data: bytes, split: Callable[[str], list[str]]) -> list[ServerSentEvent]:
    """Events a client reads from `data`, splitting lines with `split` (httpx-sse's
    decoder follows the SSE spec; str.splitlines is what naive clients do)."""
    text = data.decode("utf-8")  # strict: the wire must always be valid UTF-8
    decoder, events = SSEDecoder(), []
    for line in split(text):
        event = decoder.decode(line)
        if event is not None:
            events.append(event)
    return events


def spec_lines(text: str) -> list[str]:
    decoder = SSELineDecoder()
    return decoder.decode(text) + decoder.flush()


SPLITTERS = (spec_lines, str.splitlines)


def entries(
    text: st.SearchStrategy[str] = ANY_TEXT, ints: tuple[int, int] = (-(2**63), 2**63 - 1)
) -> st.SearchStrategy[Entry]:
    values = st.one_of(text, st.integers(*ints), st.booleans())
    return st.builds(
        Entry,
        channel=st.just("logs:etl:w:f"),
        time_ns=st.integers(0, 2**64 - 1),
        severity=st.integers(0, MAX_SEVERITY),
        message=text,
        source=text,
        attributes=st.dictionaries(text, values, max_size=4),
    )


def assert_read_back(entry: Entry, seq: int) -> None:
    """`entry`, stored as seq `seq`, reaches every client as one unaltered `log` event."""
    frame = sse.log_frame(b"e1", make_event(entry, 0, seq))
    for split in SPLITTERS:
        (event,) = parse_sse(frame, split)
        assert (event.event, event.id) == ("log", f"e1-{seq}")
        doc = json.loads(event.data)
        assert (doc["message"], doc["source"]) == (entry.message, entry.source)
        assert doc["attributes"] == entry.attributes


@given(entries(), st.integers(1, MAX_SEQ))
def test_an_entry_is_refused_or_read_back_as_exactly_one_unaltered_event(
    entry: Entry, seq: int
) -> None:
    if (error := refusal(lambda e: check_entry(e, MAX_ENTRY_BYTES), entry)) is not None:
        assert error.code in (Code.INVALID_ARGUMENT, Code.TOO_LARGE)
        return
    assert_read_back(entry, seq)


@given(st.lists(entries(), max_size=5), st.integers(0, MAX_SEVERITY))
def test_joined_frames_are_one_event_per_entry_at_or_above_the_floor(
    batch: list[Entry], floor: int
) -> None:
    valid = [e for e in batch if refusal(lambda e: check_entry(e, MAX_ENTRY_BYTES), e) is None]
    events = [make_event(entry, i, i + 1) for i, entry in enumerate(valid)]
    wanted = [f"e-{e.seq}" for e in events if e.severity >= floor]
    for split in SPLITTERS:
        parsed = parse_sse(sse.log_frames(b"e", events, floor), split)
        assert [p.id for p in parsed] == wanted


@given(
    UNICODE_TEXT,
    st.dictionaries(UNICODE_TEXT, UNICODE_TEXT, max_size=4),
    st.one_of(st.none(), UNICODE_TEXT),
)
def test_a_frame_is_one_event_whatever_its_name_id_and_data(
    name: str, data: dict[str, str], event_id: str | None
) -> None:
    frame = sse.frame(name, data, event_id, retry_ms=3000)
    for split in SPLITTERS:
        (event,) = parse_sse(frame, split)
        assert event.event == (strip_breaks(name) or "message")
        assert json.loads(event.data) == data
        assert event.id == strip_breaks(event_id or "")


def strip_breaks(text: str) -> str:
    return "".join(c for c in text if c not in BREAKS)
