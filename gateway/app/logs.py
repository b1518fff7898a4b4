"""Structured logs on stderr: one JSON object per line (or plain text with --log-format text)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

from gateway.api import request_ids

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a line says besides its message: the request or gRPC call it was written for,
    and everything passed with `extra=` (a request's method, path and status...)."""
    fields: dict[str, Any] = {}
    request_id = request_ids.current.get()
    if request_id:
        fields["request_id"] = request_id
    fields.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """A line for a person: time, level, logger and message, then the same fields as the
    JSON lines as key=value (`http request method=GET path=/api/logs/stream status=401`)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        words = [self.formatMessage(record)]
        words += (f"{name}={_plain(value)}" for name, value in _fields(record).items())
        line = " ".join(words)
        return f"{line}\n{self.formatException(record.exc_info)}" if record.exc_info else line


def _plain(value: Any) -> str:
    """A plain word as is; anything else (spaces, quotes, lists) as JSON."""
    if isinstance(value, str) and value and not any(c in value for c in ' "=\n'):
        return value
    return orjson.dumps(value, default=str).decode()


def setup(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would print every request, query strings included.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(ClientMistakes())


class ClientMistakes(logging.Filter):
    """aiohttp logs each malformed request as an error with a traceback quoting the bytes
    it choked on (for an oversized `Authorization` header: a token). A client's mistake is
    no server error: it becomes one line at info, without the quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "malformed http request refused", ()
        record.exc_info, record.exc_text = None, None
        record.__dict__.update(status=error.code, error=type(error).__name__)
        return logging.getLogger().isEnabledFor(logging.INFO)
