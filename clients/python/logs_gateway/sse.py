"""A Server-Sent Events parser (the WHATWG rules the gateway's stream follows): lines in,
events out. Pure, so it is tested without a server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerEvent:
    event: str
    data: str
    id: str  # the last event id seen on the stream, as the spec defines it


class Parser:
    def __init__(self) -> None:
        self.last_id = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        """One line without its line ending; an event when `line` is the blank line that
        ends one. Comments (`: ping`) and `retry:` are skipped."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None

    def _dispatch(self) -> ServerEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerEvent(event, "\n".join(data), self.last_id)
