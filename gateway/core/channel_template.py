"""A channel name made from a record's attributes, e.g. `logs:{service.name}:{workspace.id}`.

OTLP publishers do not name a channel per record the way LogIngest does; the gateway can
build one from the attributes they already send. Each `{name}` fills one whole segment or
part of one, with the attribute's value, which must itself be segment text, so a value
cannot add segments (or wildcards) to the channel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway.core.channels import is_segment, parse_channel
from gateway.core.errors import GatewayError, invalid

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True, slots=True)
class ChannelTemplate:
    """Literal text and attribute names, alternating: literals[i] precedes names[i]."""

    literals: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ChannelTemplate:
        """The template of `text`; ValueError naming what is wrong with it."""
        literals, names, start = [], [], 0
        for match in _PLACEHOLDER.finditer(text):
            if not _NAME.fullmatch(match[1]):
                raise ValueError(
                    f"placeholder {match[0]!r} must name an attribute "
                    "(1-128 characters of A-Z a-z 0-9 _ . -)"
                )
            literals.append(text[start : match.start()])
            names.append(match[1])
            start = match.end()
        literals.append(text[start:])
        if any("{" in part or "}" in part for part in literals):
            raise ValueError("braces must pair up around an attribute name, as in {service.name}")
        template = cls(tuple(literals), tuple(names))
        try:
            parse_channel(template.render(lambda name: "x"))
        except GatewayError as e:
            raise ValueError(
                f"does not make a valid channel (read with x for each attribute): {e.message}"
            ) from None
        return template

    def render(self, lookup: Callable[[str], str | None]) -> str:
        """The channel for one record; `lookup` gives an attribute's text, or None.

        Raises INVALID_ARGUMENT naming the missing or unusable attribute.
        """
        parts = [self.literals[0]]
        for name, literal in zip(self.names, self.literals[1:], strict=True):
            value = lookup(name)
            if value is None:
                raise invalid(f"no attribute {name!r} for the channel template")
            if not is_segment(value):
                raise invalid(
                    f"attribute {name!r} is {value[:64]!r}; a channel segment is 1-64 "
                    "characters of A-Z a-z 0-9 _ . -"
                )
            parts += (value, literal)
        return "".join(parts)
