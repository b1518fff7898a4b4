"""Rights from verified claims: rules that map what an issuer says about a caller to the
channels it may publish to and subscribe to, and whether it is an admin.

A rule names a claim, a `value` the claim must hold (a string, or one of a list), in which
`{name}` captures one channel segment, and the patterns it grants, where `{name}` is put
back. A captured value is never a wildcard or a separator: a value that would put `*`, `>`
or `:` (or anything outside a segment's characters) into a pattern gives nothing and says
why, so a claim can narrow what a rule grants and never widen it. The gateway's own `logs`
claim (`{"publish": [...], "subscribe": [...], "admin": bool}`) is one more rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.core.channels import Pattern, is_segment, parse_pattern, parse_patterns
from gateway.core.errors import GatewayError, unauthenticated

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# OAuth's `scope` (RFC 8693 / RFC 9068) and Entra ID's `scp` hold space-separated values.
SPACE_SEPARATED = frozenset({"scope", "scp"})


@dataclass(frozen=True, slots=True)
class Finding:
    """What one rule made of one claim value: patterns granted, or why it gave nothing."""

    rule: str
    value: str
    publish: tuple[Pattern, ...] = ()
    subscribe: tuple[Pattern, ...] = ()
    admin: bool = False
    refused: str = ""


class Rule(Protocol):
    def findings(self, claims: Mapping[str, Any]) -> Iterator[Finding]: ...


@dataclass(frozen=True, slots=True)
class Rights:
    publish: tuple[Pattern, ...]
    subscribe: tuple[Pattern, ...]
    admin: bool


def evaluate(rules: Sequence[Rule], claims: Mapping[str, Any]) -> list[Finding]:
    return [f for rule in rules for f in rule.findings(claims)]


def rights_of(findings: Sequence[Finding]) -> Rights:
    """The union of what the findings grant (each pattern once, in order)."""
    return Rights(
        tuple(dict.fromkeys(p for f in findings for p in f.publish)),
        tuple(dict.fromkeys(p for f in findings for p in f.subscribe)),
        any(f.admin for f in findings),
    )


class ClaimRule:
    """`claim` holds `value` -> grant `publish`, `subscribe`, `admin` (module docstring)."""

    def __init__(
        self,
        claim: str,
        value: str,
        *,
        publish: Sequence[str] = (),
        subscribe: Sequence[str] = (),
        admin: bool = False,
    ) -> None:
        if not claim:
            raise ValueError("a rule needs a `claim`")
        if not (publish or subscribe or admin):
            raise ValueError(f"rule for claim {claim!r} grants nothing (publish, subscribe, admin)")
        self.claim = claim
        self.value = value
        self._names, self._match = _value_matcher(value)
        for template in (*publish, *subscribe):
            _check_template(template, self._names)
        self._publish = tuple(publish)
        self._subscribe = tuple(subscribe)
        self._admin = admin
        self.text = f"{claim} = {value!r}"

    def findings(self, claims: Mapping[str, Any]) -> Iterator[Finding]:
        for value in claim_values(claims, self.claim):
            found = self._match.fullmatch(value)
            if found is not None:
                yield self._grant(value, found.groupdict())

    def _grant(self, value: str, captured: Mapping[str, str]) -> Finding:
        for name, text in captured.items():
            if not is_segment(text):
                why = f"{{{name}}} would be {text[:80]!r}, not one channel segment"
                return Finding(self.text, value, refused=why)
        try:
            publish = parse_patterns([_fill(t, captured) for t in self._publish])
            subscribe = parse_patterns([_fill(t, captured) for t in self._subscribe])
        except GatewayError as e:
            return Finding(self.text, value, refused=e.message)
        return Finding(self.text, value, publish, subscribe, self._admin)


class LogsClaimRule:
    """The gateway's own claim: `logs` = {"publish": [...], "subscribe": [...], "admin"}.
    A claim of the wrong shape refuses the token (as before rules existed), so a typo in an
    issuer's mapper is a clear 401 rather than a token with fewer rights."""

    text = "logs claim"

    def findings(self, claims: Mapping[str, Any]) -> Iterator[Finding]:
        if "logs" not in claims:
            return
        rights = claims["logs"]
        if not isinstance(rights, dict):
            raise unauthenticated("token 'logs' claim must be an object", "bad_claims")
        try:
            publish = parse_patterns(_string_list(rights, "publish"))
            subscribe = parse_patterns(_string_list(rights, "subscribe"))
        except GatewayError as e:
            message = f"token rights are invalid: {e.message}"
            raise unauthenticated(message, "bad_claims") from None
        admin = rights.get("admin", False)
        if not isinstance(admin, bool):
            raise unauthenticated("token 'logs.admin' must be true or false", "bad_claims")
        yield Finding(self.text, "", publish, subscribe, admin)


def claim_values(claims: Mapping[str, Any], name: str) -> list[str]:
    """The strings a claim holds: a string (space-separated for `scope` / `scp`) or a list
    of strings; other values hold none. `a.b` reads claim `b` of object claim `a` (as
    Keycloak's `realm_access.roles`) when no claim is named `a.b` itself."""
    value = claims.get(name, _lookup_path(claims, name))
    if isinstance(value, str):
        return value.split() if name in SPACE_SEPARATED else [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _lookup_path(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _value_matcher(value: str) -> tuple[frozenset[str], re.Pattern[str]]:
    """The names a value template captures and the regex matching it whole."""
    names: list[str] = []
    parts: list[str] = []
    at = 0
    for m in _PLACEHOLDER.finditer(value):
        names.append(m.group(1))
        parts += [re.escape(value[at : m.start()]), f"(?P<{m.group(1)}>.+)"]
        at = m.end()
    parts.append(re.escape(value[at:]))
    if len(set(names)) != len(names):
        raise ValueError(f"value {value!r} names a placeholder twice")
    if "{" in _PLACEHOLDER.sub("", value) or "}" in _PLACEHOLDER.sub("", value):
        raise ValueError(f"value {value!r}: a placeholder is {{name}}, letters, digits and _")
    return frozenset(names), re.compile("".join(parts), re.DOTALL)


def _check_template(template: str, names: frozenset[str]) -> None:
    """A pattern template must name only captured values and, filled with any segment, be
    a valid pattern: checked here with one, so a broken rule stops the start."""
    unknown = set(_PLACEHOLDER.findall(template)) - names
    if unknown:
        raise ValueError(f"pattern {template!r} uses {{{sorted(unknown)[0]}}}, not in the value")
    try:
        parse_pattern(_fill(template, dict.fromkeys(names, "x")))
    except GatewayError as e:
        raise ValueError(f"pattern {template!r}: {e.message}") from None


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _string_list(rights: Mapping[str, Any], name: str) -> list[str]:
    value = rights.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise unauthenticated(f"token 'logs.{name}' must be a list of strings", "bad_claims")
    return value
