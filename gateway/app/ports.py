"""The ports the gateway listens on, and the one message for a port it cannot have: which
port, why, and the flag and variable that choose another."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from gateway.app.config import SETTING


@dataclass
class Ports:
    http: int
    grpc: int


def cannot_bind(server: str, setting: str, host: str, port: int, reason: str) -> str:
    """Which port could not be had, and the flag and variable that choose another."""
    chosen_by = SETTING[setting]
    return (
        f"cannot listen on {server} port {host}:{port}: {reason} "
        f"(choose another with {chosen_by.flag} or {chosen_by.env})"
    )


def check_free(server: str, setting: str, host: str, port: int) -> None:
    """Refuse a taken port with our own line: grpcio would first print its core's."""
    try:
        socket.create_server((host, port)).close()
    except OSError as e:
        raise OSError(cannot_bind(server, setting, host, port, reason_of(e))) from None


def reason_of(error: OSError) -> str:
    """ "address already in use", not asyncio's "error while attempting to bind on ..."."""
    return (os.strerror(error.errno) if error.errno else str(error)).lower()


def grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
