"""Property-based tests of the rules every request's names and entries must keep, from both
sides: every valid input is accepted (a parser that refuses everything fails here), and
each way of breaking a rule is refused with the message that names that rule.

Each strategy for a broken rule keeps every rule checked before it, so the refusal it gets
is the one for its own rule.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.channels import (
    MAX_BYTES,
    MAX_SEGMENTS,
    channel_pattern,
    parse_channel,
    parse_pattern,
)
from gateway.core.cursor import MAX_SEQ
from gateway.core.errors import Code
from gateway.core.events import MAX_SEVERITY, Entry
from gateway.core.ingest import check_entry
from tests.test_properties import (
    ANY_CHAR,
    LONE_SURROGATES,
    MAX_ENTRY_BYTES,
    SEGMENT,
    UNICODE_TEXT,
    assert_read_back,
    entries,
    refusal,
)

# -- channels and patterns -------------------------------------------------------------

NO_COLON = st.text(st.characters(exclude_categories=(), exclude_characters=":"), max_size=6)
VALID_SEGMENT = st.from_regex(SEGMENT, fullmatch=True)
# A segment of no rule: empty, too long, or with a character outside A-Z a-z 0-9 _ . -
BAD_SEGMENT = st.one_of(
    st.just(""),
    st.from_regex(r"[A-Za-z0-9_.-]{65,70}", fullmatch=True),
    NO_COLON.filter(lambda s: not SEGMENT.fullmatch(s) and s not in ("*", ">")),
)
UNBROKEN = st.one_of(VALID_SEGMENT, st.just("*"))  # a pattern segment before the break


def joined(*parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[str]:
    """Lists of segments, concatenated and joined by ':' (not empty, within MAX_BYTES)."""
    text = st.tuples(*parts).map(lambda lists: ":".join(s for p in lists for s in p))
    return text.filter(lambda t: 0 < len(t.encode("utf-8", "surrogatepass")) <= MAX_BYTES)


def segments(of: st.SearchStrategy[str], least: int, most: int) -> st.SearchStrategy[list[str]]:
    return st.lists(of, min_size=least, max_size=most)


def one(of: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return segments(of, 1, 1)


LOGS = st.just(["logs"])
TOO_LONG = st.text(ANY_CHAR, min_size=MAX_BYTES + 1, max_size=MAX_BYTES + 40)
TOO_MANY = joined(segments(NO_COLON, MAX_SEGMENTS + 1, 20))
BROKEN_CHANNELS = {
    "must be a non-empty string": st.just(""),
    f"is longer than {MAX_BYTES} bytes": TOO_LONG,
    f"has more than {MAX_SEGMENTS} segments": TOO_MANY,
    "must start with 'logs:'": joined(
        one(NO_COLON.filter(lambda s: s != "logs")), segments(NO_COLON, 0, MAX_SEGMENTS - 1)
    ),
    "needs at least logs:{service}:{workspace}": joined(LOGS, segments(NO_COLON, 0, 1)),
    "must be 1-64 characters of A-Z a-z 0-9 _ . -": joined(
        LOGS, segments(VALID_SEGMENT, 0, 2), one(BAD_SEGMENT), segments(NO_COLON, 0, 2)
    ).filter(lambda t: t.count(":") >= 2),
}
BROKEN_PATTERNS = {
    "must be a non-empty string": st.just(""),
    f"is longer than {MAX_BYTES} bytes": TOO_LONG,
    f"has more than {MAX_SEGMENTS} segments": TOO_MANY,
    "'>' may only be the last segment": joined(
        segments(UNBROKEN, 0, 3), st.just([">"]), segments(NO_COLON, 1, 2)
    ),
    "must be '*', '>' or 1-64 characters": joined(
        segments(UNBROKEN, 0, 3), one(BAD_SEGMENT), segments(NO_COLON, 0, 2)
    ),
}


@given(joined(LOGS, segments(VALID_SEGMENT, 2, MAX_SEGMENTS - 1)))
def test_every_valid_channel_is_accepted(text: str) -> None:
    assert parse_channel(text) == text
    assert channel_pattern(text).segments == tuple(text.split(":"))


@given(joined(segments(UNBROKEN, 0, MAX_SEGMENTS - 1), one(st.one_of(UNBROKEN, st.just(">")))))
def test_every_valid_pattern_is_accepted(text: str) -> None:
    assert parse_pattern(text).segments == tuple(text.split(":"))


@pytest.mark.parametrize("rule", BROKEN_CHANNELS)
@given(data=st.data())
def test_each_broken_channel_rule_is_refused_by_name(rule: str, data: st.DataObject) -> None:
    text = data.draw(BROKEN_CHANNELS[rule])
    for parse in (parse_channel, channel_pattern):
        error = refusal(parse, text)
        assert error is not None and error.code is Code.INVALID_ARGUMENT
        assert rule in error.message


@pytest.mark.parametrize("rule", BROKEN_PATTERNS)
@given(data=st.data())
def test_each_broken_pattern_rule_is_refused_by_name(rule: str, data: st.DataObject) -> None:
    error = refusal(parse_pattern, data.draw(BROKEN_PATTERNS[rule]))
    assert error is not None and error.code is Code.INVALID_ARGUMENT
    assert rule in error.message


# -- entries ---------------------------------------------------------------------------

# Entries that keep every rule: a message with something in it, valid Unicode, 64-bit ints.
VALID_ENTRIES = entries(UNICODE_TEXT, (-(2**63), 2**64 - 1)).filter(
    lambda e: not e.message.isspace() and e.message != ""
)


@given(VALID_ENTRIES, st.integers(1, MAX_SEQ))
def test_every_valid_entry_is_accepted_and_read_back(entry: Entry, seq: int) -> None:
    check_entry(entry, MAX_ENTRY_BYTES)
    assert_read_back(entry, seq)


def broken(field: str, values: st.SearchStrategy[object]) -> st.SearchStrategy[Entry]:
    """A valid entry with `field` replaced by one of `values`."""
    return st.builds(lambda e, v: dataclasses.replace(e, **{field: v}), VALID_ENTRIES, values)


SURROGATE_TEXT = st.tuples(UNICODE_TEXT, st.sampled_from(LONE_SURROGATES), UNICODE_TEXT).map(
    "".join
)
UNENCODABLE = "must be valid Unicode text and 64-bit numbers"
BROKEN_ENTRIES = {
    "message is empty": broken("message", st.text(st.sampled_from(" \t\n\r\x0b\x85\u2028\u3000"))),
    f"is outside 0-{MAX_SEVERITY}": broken(
        "severity", st.integers(max_value=-1) | st.integers(min_value=MAX_SEVERITY + 1)
    ),
    f"{UNENCODABLE} (text)": st.one_of(
        broken("message", SURROGATE_TEXT),
        broken("source", SURROGATE_TEXT),
        broken("attributes", st.dictionaries(SURROGATE_TEXT, UNICODE_TEXT, min_size=1)),
        broken("attributes", st.dictionaries(UNICODE_TEXT, SURROGATE_TEXT, min_size=1)),
    ),
    f"{UNENCODABLE} (numbers)": broken(
        "attributes",
        st.dictionaries(
            UNICODE_TEXT,
            st.integers(min_value=2**64) | st.integers(max_value=-(2**63) - 1),
            min_size=1,
        ),
    ),
}


@pytest.mark.parametrize("rule", BROKEN_ENTRIES)
@given(data=st.data())
def test_each_broken_entry_rule_is_refused_by_name(rule: str, data: st.DataObject) -> None:
    entry = data.draw(BROKEN_ENTRIES[rule])
    error = refusal(lambda e: check_entry(e, MAX_ENTRY_BYTES), entry)
    assert error is not None and error.code is Code.INVALID_ARGUMENT
    assert rule.split(" (")[0] in error.message


@given(VALID_ENTRIES, st.integers(1, 200))
def test_an_entry_over_the_size_limit_is_refused_by_its_size(entry: Entry, limit: int) -> None:
    entry.message = "m" * (limit + 1)
    error = refusal(lambda e: check_entry(e, limit), entry)
    assert error is not None and error.code is Code.TOO_LARGE
    assert re.fullmatch(rf"entry is \d+ bytes; at most {limit}", error.message)


@given(VALID_ENTRIES)
def test_an_entry_of_exactly_the_size_limit_is_accepted(entry: Entry) -> None:
    """The bound is inclusive: an entry as large as the limit its refusal reports passes."""
    error = refusal(lambda e: check_entry(e, 1), entry)
    found = re.fullmatch(r"entry is (\d+) bytes; .*", error.message if error else "")
    assert found is not None
    size = int(found.group(1))
    check_entry(entry, size)
    error = refusal(lambda e: check_entry(e, size - 1), entry)
    assert error is not None and error.message == f"entry is {size} bytes; at most {size - 1}"
