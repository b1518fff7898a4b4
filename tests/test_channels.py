"""Channel names and patterns (DESIGN §3)."""

from __future__ import annotations

import pytest

from gateway.core.channels import allowed, parse_channel, parse_pattern, parse_patterns
from gateway.core.errors import Code, GatewayError


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "non-empty"),
        ("etl:workspace:x", "start with 'logs:'"),
        ("logs:etl", "at least"),
        ("logs:etl:a b", "segment 'a b'"),
        ("logs:etl::x", "segment ''"),
        ("logs:etl:" + "w" * 65, "1-64"),
        ("logs:a:b:c:d:e:f", "more than 6 segments"),
        ("logs:etl:*", "segment '*'"),
        ("logs:" + ":".join(["x" * 60] * 5), "longer than 256 bytes"),
    ],
)
def test_bad_channels_name_the_rule(text: str, rule: str) -> None:
    with pytest.raises(GatewayError) as err:
        parse_channel(text)
    assert err.value.code is Code.INVALID_ARGUMENT
    assert rule in err.value.message


def test_good_channels() -> None:
    for name in ("logs:etl:workspace123:workflow456", "logs:analytics:ws-1.a_b", "logs:a:b:c:d:e"):
        assert parse_channel(name) == name


@pytest.mark.parametrize(
    ("pattern", "channel", "expected"),
    [
        ("logs:etl:>", "logs:etl:workspace123:workflow456", True),
        ("logs:etl:>", "logs:etl:workspace123", True),
        ("logs:etl:>", "logs:faas:workspace123", False),
        ("logs:*:workspace123", "logs:analytics:workspace123", True),
        ("logs:*:workspace123", "logs:etl:workspace123:x", False),
        ("logs:*:workspace123:>", "logs:etl:workspace123:x", True),
        ("logs:*:workspace123:>", "logs:etl:workspace1234:x", False),
        ("logs:etl:workspace123:workflow456", "logs:etl:workspace123:workflow456", True),
        ("logs:etl:workspace123", "logs:etl:workspace123:workflow456", False),
    ],
)
def test_matching(pattern: str, channel: str, expected: bool) -> None:
    assert parse_pattern(pattern).matches(channel) is expected


@pytest.mark.parametrize(
    ("granted", "wanted", "expected"),
    [
        (["logs:etl:workspace123:>"], "logs:etl:workspace123:workflow456", True),
        (["logs:etl:workspace123:>"], "logs:etl:workspace123:*", True),
        (["logs:etl:workspace123:>"], "logs:etl:workspace123:>", True),
        (["logs:etl:workspace123:>"], "logs:etl:>", False),
        (["logs:etl:workspace123:>"], "logs:>", False),
        (["logs:etl:workspace123:>"], "logs:etl:*:x", False),
        (["logs:etl:workspace123:>"], "logs:etl:workspace1234:x", False),
        (["logs:*:workspace123"], "logs:etl:workspace123", True),
        (["logs:*:workspace123"], "logs:*:workspace123", True),
        (["logs:*:workspace123"], "logs:*:*", False),
        (["logs:etl:*"], "logs:etl:>", False),
        (["logs:>"], "logs:*:workspace1:>", True),
    ],
)
def test_rights_cover_only_what_they_grant(granted: list[str], wanted: str, expected: bool) -> None:
    assert allowed(parse_patterns(granted), parse_pattern(wanted)) is expected


@pytest.mark.parametrize(
    ("text", "rule"), [("logs:>:x", "last segment"), ("logs:e*:x", "segment 'e*'")]
)
def test_bad_patterns(text: str, rule: str) -> None:
    with pytest.raises(GatewayError) as err:
        parse_pattern(text)
    assert rule in err.value.message
