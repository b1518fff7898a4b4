"""The gRPC server's options, from the settings."""

from __future__ import annotations

from gateway.app.config import Config
from gateway.core.tokens import MAX_TOKEN_BYTES


def grpc_options(c: Config) -> list[tuple[str, int]]:
    """Message sizes, keepalive both ways, room for every token, and the port shared among
    --workers."""
    return [
        ("grpc.max_receive_message_length", c.max_message_bytes),
        ("grpc.max_send_message_length", c.max_message_bytes),
        # Our pings find a publisher or subscriber behind a dead path (a half-open
        # connection would otherwise hold its call until the token expires).
        ("grpc.keepalive_time_ms", int(c.grpc_keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(c.grpc_keepalive_seconds * 500)),
        ("grpc.http2.ping_timeout_ms", int(c.grpc_keepalive_seconds * 500)),
        ("grpc.http2.max_pings_without_data", 0),
        # Clients' pings: at most one per 5 s, with or without calls (the SDK's
        # keepalive); a client pinging faster is sent GOAWAY after 2 strikes.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.http2.max_ping_strikes", 2),
        # Above its default 8 KiB soft limit gRPC refuses metadata at random; tokens
        # up to MAX_TOKEN_BYTES must always reach the verifier, which answers them.
        ("grpc.max_metadata_size", 2 * MAX_TOKEN_BYTES),
        # Workers share the port (--workers); a lone gateway refuses a busy one.
        ("grpc.so_reuseport", int(c.workers > 1)),
    ]
