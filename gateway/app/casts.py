"""How each setting's text is read and bounded: a cast returns the value, or raises
ValueError saying the rule it breaks (config.py adds the setting's name and the value)."""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from pathlib import Path
from urllib.parse import urlparse

from gateway.core.channel_template import ChannelTemplate

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


def host(text: str) -> str:
    """An IP address or a DNS name, so a typo fails here rather than at bind time."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOSTNAME.fullmatch(text):
            raise ValueError("must be an IP address (e.g. 0.0.0.0) or a host name") from None
    return text


def non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number 0-65535")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a number greater than 0")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be a number of at least 0")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be a whole number of at least 0")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def leeway(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 30:
        raise ValueError("must be between 0 and 30 seconds")
    return value


def secret(text: str) -> str:
    if len(text.encode()) < 32:
        raise ValueError("must be at least 32 bytes (generate one with: openssl rand -hex 32)")
    return text


def existing_file(text: str) -> str:
    if text and not Path(text).is_file():
        raise ValueError("no such file")
    return text


BROKERS = "'memory', a URL redis://HOST:PORT/DB or nats://HOST:PORT[,HOST:PORT...]"


def broker(text: str) -> str:
    if text == "memory":
        return text
    if text.startswith("nats://"):
        for server in text.split(","):
            url = urlparse(server.strip() if "://" in server else f"nats://{server.strip()}")
            if url.scheme not in ("nats", "tls") or not url.hostname or url.path:
                raise ValueError(f"server {server!r}: must be nats://HOST:PORT ({BROKERS})")
        return text
    url = urlparse(text)
    if url.scheme not in ("redis", "rediss") or not url.hostname:
        raise ValueError(f"must be {BROKERS}")
    return text


def replicas(text: str) -> int:
    value = int(text)
    if value not in (1, 3, 5):
        raise ValueError("must be 1, 3 or 5 (a JetStream stream's replicas: an odd quorum)")
    return value


def stream_name(text: str) -> str:
    if not text or any(c in text for c in ".*> \t/\\") or len(text) > 64:
        raise ValueError("must be 1-64 characters without '.', '*', '>', '/' or spaces")
    return text


def level(text: str) -> str:
    """A logging level; `warn` too, as the entries' own level and `tail --level` spell it."""
    level = {"warn": "warning"}.get(text.lower(), text.lower())
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError("must be debug, info, warn(ing) or error")
    return level


def event_loop(text: str) -> str:
    if text not in ("asyncio", "uvloop"):
        raise ValueError("must be asyncio or uvloop")
    if text == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ValueError("uvloop is not installed (pip install 'logs-gateway[uvloop]')")
    return text


def log_format(text: str) -> str:
    if text not in ("json", "text"):
        raise ValueError("must be json or text")
    return text


def origins(text: str) -> str:
    for origin in filter(None, (o.strip() for o in text.split(","))):
        url = urlparse(origin)
        if origin == "*" or url.scheme not in ("http", "https") or not url.netloc or url.path:
            raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
    return text


def channel_template(text: str) -> str:
    if text:
        ChannelTemplate.parse(text)
    return text
