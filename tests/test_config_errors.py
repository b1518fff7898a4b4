"""Every setting refuses a bad value at start, with a message naming the setting and value."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.app import casts, cli
from gateway.app import config as cfg
from tests.conftest import SECRET

# One bad value per setting; the completeness test below keeps this in step with SETTINGS.
BAD_VALUES = {
    "host": "bad host",
    "http_port": "70000",
    "grpc_port": "grpc",
    "dev": "maybe",
    "jwt_secret": "too-short-secret",
    "jwt_public_keys": "/nonexistent/jwks.json",
    "jwt_private_key": "/nonexistent/key.pem",
    "jwt_issuer": " ",
    "jwt_audience": "",
    "jwt_leeway": "31",
    "issuers": "/nonexistent/issuers.toml",
    "token_cache_entries": "-1",
    "broker": "mysql://db:3306",
    "workers": "0",
    "history_entries": "0",
    "history_seconds": "-1",
    "max_history_bytes": "256MiB",
    "dedup_seconds": "0",
    "dedup_batches": "-1",
    "max_dedup_bytes": "64MiB",
    "max_feed_bytes": "0",
    "nats_stream": "logs.gateway",
    "nats_replicas": "2",
    "nats_lost_channels": "0",
    "nats_listed_channels": "-1",
    "max_entry_bytes": "64k",
    "max_message_bytes": "0",
    "max_inflation_ratio": "0.5",
    "max_batch_entries": "1.5",
    "max_channels": "-3",
    "max_connections_per_token": "many",
    "max_streams": "-1",
    "max_publish_streams_per_token": "none",
    "max_publish_streams": "2.5",
    "publish_rate": "-5",
    "send_buffer_bytes": "1MiB",
    "heartbeat_seconds": "0",
    "grpc_keepalive_seconds": "-20",
    "http_header_timeout": "0",
    "http_idle_timeout": "forever",
    "max_http_connections": "0",
    "retry_ms": "soon",
    "grace_seconds": "nan",
    "otlp_channel_template": "logs:{service.name}",
    "cors_origins": "*",
    "log_level": "verbose",
    "log_format": "xml",
    "event_loop": "trio",
}
SETTINGS = {s.name: s for s in cfg.SETTINGS}
FLAG_SETTINGS = [s.name for s in cfg.SETTINGS if s.cast is not casts.boolean]  # dev is a switch


def test_every_setting_has_a_bad_value_here() -> None:
    assert set(BAD_VALUES) == set(SETTINGS)


def assert_names_setting_and_value(message: str, where: str, setting: cfg.Setting) -> None:
    bad = BAD_VALUES[setting.name]
    assert message.startswith(f"logs-gateway: {where}=")
    if setting.secret:
        assert bad not in message
        assert f"{where}=***: " in message
    else:
        assert f"{where}={bad!r}: " in message
    reason = message.split(": ", 2)[-1].strip()
    assert reason  # says what is wrong, not just that something is


@pytest.mark.parametrize("name", list(SETTINGS))
def test_bad_environment_value_stops_the_start(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    setting = SETTINGS[name]
    monkeypatch.setenv(setting.env, BAD_VALUES[name])
    assert cli.main(["config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_names_setting_and_value(captured.err, setting.env, setting)


@pytest.mark.parametrize("name", FLAG_SETTINGS)
def test_bad_flag_value_stops_the_start(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    setting = SETTINGS[name]
    assert cli.main(["config", f"{setting.flag}={BAD_VALUES[name]}"]) == 2
    assert_names_setting_and_value(capsys.readouterr().err, setting.flag, setting)


def serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A real `logs-gateway serve` that must exit on its own (bad configuration)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(cfg.ENV_PREFIX)}
    command = [sys.executable, "-m", "gateway", "serve", "--http-port", "0", "--grpc-port", "0"]
    return subprocess.run(
        [*command, *args], env=clean | env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {"LOGS_GATEWAY_HISTORY_ENTRIES": "0"}, "LOGS_GATEWAY_HISTORY_ENTRIES='0': must be"),
        (("--log-format", "xml"), {}, "--log-format='xml': must be json or text"),
        ((), {}, "no token key configured: set LOGS_GATEWAY_JWT_SECRET"),
        ((), {"LOGS_GATEWAY_JWT_SECRET": "short"}, "LOGS_GATEWAY_JWT_SECRET=***: must be at least"),
        ((), {"LOGS_GATEWAY_TYPO": "1"}, "unknown setting LOGS_GATEWAY_TYPO"),
        (("--dev", "--host", "0.0.0.0"), {}, "--dev binds a loopback address only, not 0.0.0.0"),
        (("--dev",), {"LOGS_GATEWAY_HOST": "gateway.example"}, "--dev binds a loopback address"),
    ],
)
def test_a_real_process_refuses_to_start(
    args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    result = serve(*args, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"logs-gateway: {expected}")
    assert len(result.stderr.splitlines()) == 1  # one clear line, no traceback


def test_unreadable_public_keys_stop_a_real_process(tmp_path: Path) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_text("{not json")
    result = serve(env={"LOGS_GATEWAY_JWT_PUBLIC_KEYS": str(keys)})
    assert result.returncode == 2
    assert result.stderr.startswith(f"logs-gateway: LOGS_GATEWAY_JWT_PUBLIC_KEYS={str(keys)!r}: ")


def test_a_jwks_without_a_signing_key_stops_a_real_process_naming_the_file(
    tmp_path: Path,
) -> None:
    """An identity provider's JWKS may hold only its encryption key: one line, no traceback."""
    keys = tmp_path / "jwks.json"
    keys.write_text('{"keys": [{"kty": "RSA", "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP"}]}')
    result = serve(env={"LOGS_GATEWAY_JWT_PUBLIC_KEYS": str(keys)})
    assert result.returncode == 2
    assert result.stderr.startswith(f"logs-gateway: LOGS_GATEWAY_JWT_PUBLIC_KEYS={str(keys)!r}: ")
    assert "no usable verification key (key 'enc-1': not a signing key" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_config_prints_every_setting_with_secrets_masked() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(cfg.ENV_PREFIX)}
    broker = "redis://:hunter2-password@redis:6379/0"
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "config"],
        env=clean | {"LOGS_GATEWAY_JWT_SECRET": SECRET, "LOGS_GATEWAY_BROKER": broker},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = [line.split(" = ")[0] for line in result.stdout.splitlines()]
    assert names == list(SETTINGS)
    assert SECRET not in result.stdout
    assert "jwt_secret = '***'" in result.stdout
    assert "hunter2" not in result.stdout
    assert "broker = 'redis://:***@redis:6379/0'" in result.stdout


def test_a_bad_value_never_shows_a_url_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "--broker", "mysql://root:hunter2@db:3306"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "--broker='mysql://root:***@db:3306': must be" in err


@pytest.mark.parametrize(("server", "setting"), [("HTTP", "http_port"), ("gRPC", "grpc_port")])
def test_a_taken_port_is_named_with_the_setting_that_moves_it(server: str, setting: str) -> None:
    """One line naming the port, the flag and the variable; nothing drains that never ran."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flag = "--" + setting.replace("_", "-")
        result = serve(flag, str(port), env={"LOGS_GATEWAY_JWT_SECRET": SECRET})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"logs-gateway: cannot listen on {server} port 127.0.0.1:{port}: address "
        + "already in use"
        + f" (choose another with {flag} or LOGS_GATEWAY_{setting.upper()})"
    ]
