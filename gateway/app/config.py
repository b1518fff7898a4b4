"""One configuration object, built from flags and LOGS_GATEWAY_* variables, validated at start.

Every setting is one field of Config: its name (which gives its flag and its variable), type,
default, the cast that reads its text and checks its bound, and its help. A bad value stops
the start with a message naming the setting and the value.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlparse

from gateway.app import casts

ENV_PREFIX = "LOGS_GATEWAY_"


class ConfigError(ValueError):
    """A setting has a bad value; the message names both."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as the flags, the environment and the docs see it (from its Config field)."""

    name: str
    default: Any
    cast: Callable[[str], Any]
    help: str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def setting(default: Any, cast: Callable[[str], Any], help: str, *, secret: bool = False) -> Any:
    """A Config field declaring one setting: its default, the cast that reads its text and
    checks its bound, and its help."""
    return field(default=default, metadata={"cast": cast, "help": help, "secret": secret})


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting, declared once, as `name: type = setting(default, cast, help)`: the
    flag, the variable and the docs' table come from these fields, and the core's limits
    are passed in from them (the core declares no default of its own)."""

    host: str = setting("127.0.0.1", casts.host, "address both servers bind")
    http_port: int = setting(3002, casts.port, "HTTP port (SSE, publish, page, health)")
    grpc_port: int = setting(50051, casts.port, "gRPC port (ingest, subscribe)")
    dev: bool = setting(
        False,
        casts.boolean,
        "dev mode (loopback only): random secret if none, printed tokens, /test/logs, /dev/login",
    )
    jwt_secret: str = setting("", casts.secret, "HS256 shared secret (>= 32 bytes)", secret=True)
    jwt_public_keys: str = setting("", casts.existing_file, "PEM or JWKS file of verification keys")
    jwt_private_key: str = setting(
        "", casts.existing_file, "PEM private key the CLI signs tokens with"
    )
    jwt_issuer: str = setting("logs-gateway", casts.non_empty, "required `iss` claim")
    jwt_audience: str = setting("logs-gateway", casts.non_empty, "required `aud` claim")
    jwt_leeway: float = setting(5.0, casts.leeway, "clock skew allowed on exp/iat, seconds (<= 30)")
    issuers: str = setting(
        "",
        casts.existing_file,
        "TOML file of trusted identity providers: keys, audiences, rights rules (SECURITY.md)",
    )
    token_cache_entries: int = setting(
        10_000,
        casts.non_negative_int,
        "verified tokens remembered until they expire (0: verify every request)",
    )
    broker: str = setting("memory", casts.broker, casts.BROKERS)
    workers: int = setting(
        1, casts.positive_int, "gateway processes sharing the ports (Redis or NATS broker)"
    )
    nats_stream: str = setting(
        "logs-gateway",
        casts.stream_name,
        "NATS broker: the JetStream stream holding history (also its subjects' prefix)",
    )
    nats_replicas: int = setting(
        1,
        casts.replicas,
        "NATS broker: servers storing each entry (1, 3 or 5); an ack waits for a quorum",
    )
    nats_lost_channels: int = setting(
        10_000,
        casts.positive_int,
        "NATS broker: channels one history read's start checks for earlier losses "
        "(a get each); past it the gap is a lower bound",
    )
    nats_listed_channels: int = setting(
        10_000,
        casts.positive_int,
        "NATS broker: channels one listing of channels may read (a channel two of its "
        "patterns match counts twice); past it the listing is refused, asking for a "
        "narrower pattern",
    )
    history_entries: int = setting(1000, casts.positive_int, "entries kept per channel")
    history_seconds: float = setting(600.0, casts.positive_float, "seconds an entry is kept")
    max_history_bytes: int = setting(
        256 * 1024 * 1024,
        casts.positive_int,
        "memory and NATS brokers: bytes of all history; past it the oldest entries go first",
    )
    dedup_seconds: float = setting(
        600.0,
        casts.positive_float,
        "how long a producer's resent batch is recognised and not stored twice",
    )
    dedup_batches: int = setting(
        1024,
        casts.positive_int,
        "how many of a producer's latest batches are recognised when resent",
    )
    max_dedup_bytes: int = setting(
        64 * 1024 * 1024,
        casts.positive_int,
        "memory broker: bytes kept to recognise resent batches; least recent producers go first",
    )
    max_feed_bytes: int = setting(
        256 * 1024 * 1024,
        casts.positive_int,
        "Redis broker: bytes of the feed every instance reads; past it the oldest batches go",
    )
    max_entry_bytes: int = setting(
        65536, casts.positive_int, "largest entry (message, source, attributes)"
    )
    max_message_bytes: int = setting(
        4 * 1024 * 1024, casts.positive_int, "largest gRPC message / HTTP body"
    )
    max_inflation_ratio: int = setting(
        100,
        casts.positive_int,
        "HTTP bodies: inflated size at most this many times the compressed size (past 1 MiB)",
    )
    max_batch_entries: int = setting(1000, casts.positive_int, "most entries in one publish batch")
    max_channels: int = setting(32, casts.positive_int, "channels per SSE connection")
    max_connections_per_token: int = setting(
        16,
        casts.positive_int,
        "open SSE and gRPC Subscribe streams per token (on Redis: across every gateway)",
    )
    max_streams: int = setting(
        10_000, casts.positive_int, "open SSE and gRPC Subscribe streams in all, per process"
    )
    max_publish_streams_per_token: int = setting(
        64,
        casts.positive_int,
        "open gRPC Publish streams per token (on Redis: across every gateway)",
    )
    max_publish_streams: int = setting(
        5_000, casts.positive_int, "open gRPC Publish streams in all, per process"
    )
    publish_rate: float = setting(
        20_000.0,
        casts.non_negative_float,
        "entries per second per service token (its subject), per process; 0 for no limit",
    )
    send_buffer_bytes: int = setting(
        1024 * 1024, casts.positive_int, "unsent bytes per SSE connection before it is dropped"
    )
    heartbeat_seconds: float = setting(15.0, casts.positive_float, "SSE heartbeat interval")
    grpc_keepalive_seconds: float = setting(
        20.0,
        casts.positive_float,
        "gRPC ping interval on a quiet connection; no answer within half of it ends the calls",
    )
    http_header_timeout: float = setting(
        10.0,
        casts.positive_float,
        "seconds an HTTP client has to send a request's head once it starts it (slowloris)",
    )
    http_idle_timeout: float = setting(
        75.0,
        casts.positive_float,
        "seconds an HTTP connection may stay idle between requests, or mid-body",
    )
    max_http_connections: int = setting(
        20_000,
        casts.positive_int,
        "open connections to the HTTP port, per process (SSE streams included); keep it"
        " under the process's file limit (ulimit -n)",
    )
    retry_ms: int = setting(3000, casts.positive_int, "SSE `retry:` sent to browsers")
    grace_seconds: float = setting(10.0, casts.positive_float, "drain time on SIGTERM")
    otlp_channel_template: str = setting(
        "",
        casts.channel_template,
        "channel of an OTLP record without a logs_gateway.channel attribute, from its"
        " attributes, e.g. logs:{service.name}:{workspace.id}",
    )
    cors_origins: str = setting(
        "", casts.origins, "comma-separated origins allowed to read cross-origin"
    )
    log_level: str = setting("info", casts.level, "debug, info, warn(ing) or error")
    log_format: str = setting("json", casts.log_format, "json or text")
    event_loop: str = setting(
        "asyncio", casts.event_loop, "asyncio, or uvloop (both servers then run on one uvloop loop)"
    )

    @property
    def has_verify_key(self) -> bool:
        return bool(self.jwt_secret or self.jwt_public_keys or self.issuers)

    def masked(self) -> dict[str, Any]:
        """Effective values with secrets hidden (for `logs-gateway config` and logs)."""
        out = {}
        for s in SETTINGS:
            value = getattr(self, s.name)
            out[s.name] = "***" if s.secret and value else _without_password(value)
        return out


SETTINGS = tuple(Setting(f.name, f.default, **f.metadata) for f in fields(Config))
SETTING = {s.name: s for s in SETTINGS}
AUTH_SETTINGS = (
    "jwt_secret",
    "jwt_public_keys",
    "jwt_private_key",
    "jwt_issuer",
    "jwt_audience",
    "jwt_leeway",
    "issuers",
    "token_cache_entries",
)


def _without_password(value: Any) -> Any:
    """A URL's password (redis://:PASSWORD@host) masked; other values unchanged."""
    if not isinstance(value, str) or "@" not in value:
        return value
    url = urlparse(value)
    if not url.password:
        return value
    host = url.netloc.rsplit("@", 1)[1]
    return url._replace(netloc=f"{url.username or ''}:***@{host}").geturl()


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Add the flags of `names` (default: all settings); defaults come later, from env."""
    for s in SETTINGS:
        if names is not None and s.name not in names:
            continue
        if s.cast is casts.boolean:
            parser.add_argument(
                s.flag, dest=s.name, action="store_const", const="true", default=None, help=s.help
            )
        else:
            parser.add_argument(
                s.flag,
                dest=s.name,
                default=None,
                metavar="VALUE",
                help=f"{s.help} (env {s.env}, default {s.default!r})",
            )


def load(args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Flags win over environment variables, which win over defaults."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for s in SETTINGS:
        flag_value = getattr(args, s.name, None) if args is not None else None
        if flag_value is not None:
            values[s.name] = _cast(s, flag_value, s.flag)
        elif s.env in env:
            values[s.name] = _cast(s, env[s.env], s.env)
        else:
            values[s.name] = s.default
    unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in _KNOWN_ENV)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]}; see `logs-gateway serve --help`")
    if values["workers"] > 1 and values["broker"] == "memory":
        raise ConfigError(
            f"--workers={values['workers']} needs a shared broker (--broker redis:// or nats://):"
            " with the memory broker each process would keep its own history, unseen by the others"
        )
    if values["dev"] and not _is_loopback(values["host"]):
        raise ConfigError(
            f"--dev binds a loopback address only, not {values['host']}: its /dev/login and"
            " /test/logs let anyone who can reach it sign in and publish without a password"
        )
    return Config(**values)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


_KNOWN_ENV = {s.env for s in SETTINGS} | {
    # read by the client verbs, not the server
    "LOGS_GATEWAY_TOKEN",
    "LOGS_GATEWAY_URL",
    "LOGS_GATEWAY_GRPC_TARGET",
}


def _cast(setting: Setting, text: str, where: str) -> Any:
    try:
        return setting.cast(text)
    except ValueError as e:
        shown = "***" if setting.secret else repr(_without_password(text))
        reason = str(e)
        if "invalid literal" in reason or "could not convert" in reason:
            reason = "must be a number"
        raise ConfigError(f"{where}={shown}: {reason}") from None
