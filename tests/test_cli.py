"""The `logs-gateway` server verbs as a user runs them: serve, token, keys, config."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from gateway.core.keys import load_public_keys
from tests.conftest import AUDIENCE, ISSUER, SECRET, free_port, make_verifier


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOGS_GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def claims_of(token: str) -> dict[str, object]:
    return jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)


def test_token_verbs_print_one_verifiable_jwt() -> None:
    env = {"LOGS_GATEWAY_JWT_SECRET": SECRET}
    service = run("token", "service", "etl", "--publish", "logs:etl:>", "--ttl", "120", env=env)
    user = run(
        "token",
        "user",
        "alice",
        "--subscribe",
        "logs:*:workspace123",
        "logs:*:workspace123:>",
        env=env,
    )
    admin = run("token", "admin", "ops", env=env)
    assert [p.returncode for p in (service, user, admin)] == [0, 0, 0]
    s, u, a = (claims_of(p.stdout.strip()) for p in (service, user, admin))
    assert s["sub"] == "etl" and s["logs"] == {
        "publish": ["logs:etl:>"],
        "subscribe": [],
        "admin": False,
    }
    assert int(s["exp"]) - int(s["iat"]) == 120  # type: ignore[call-overload]
    assert u["logs"]["subscribe"] == ["logs:*:workspace123", "logs:*:workspace123:>"]  # type: ignore[index]
    assert a["logs"]["admin"] is True  # type: ignore[index]


def test_token_without_key_or_with_bad_pattern_fails_clearly() -> None:
    missing = run("token", "admin", "ops")
    assert missing.returncode == 2 and "LOGS_GATEWAY_JWT_SECRET" in missing.stderr
    bad = run(
        "token", "service", "x", "--publish", "logs:>:x", env={"LOGS_GATEWAY_JWT_SECRET": SECRET}
    )
    assert bad.returncode == 2 and "'>' may only be the last segment" in bad.stderr
    assert run("token", "service", "x").returncode == 2  # --publish is required


def test_keys_generate_then_sign_and_verify_eddsa(tmp_path: Path) -> None:
    made = run("keys", "generate", "--dir", str(tmp_path))
    assert made.returncode == 0
    private = next(tmp_path.glob("*.key.pem"))
    assert private.stat().st_mode & 0o077 == 0
    token = run(
        "token",
        "user",
        "bob",
        "--subscribe",
        "logs:>",
        env={"LOGS_GATEWAY_JWT_PRIVATE_KEY": str(private)},
    )
    assert token.returncode == 0, token.stderr
    verifier = make_verifier(None, load_public_keys(tmp_path / "jwks.json"))
    assert verifier.verify(token.stdout.strip()).subject == "bob"
    assert jwt.get_unverified_header(token.stdout.strip())["alg"] == "EdDSA"
    run("keys", "generate", "--dir", str(tmp_path))
    assert len(load_public_keys(tmp_path / "jwks.json")) == 2  # rotation keeps the old key


def test_serve_refuses_without_key_and_says_what_to_set() -> None:
    result = run("serve", "--http-port", str(free_port()), "--grpc-port", str(free_port()))
    assert result.returncode == 2
    assert "LOGS_GATEWAY_JWT_SECRET" in result.stderr and "--dev" in result.stderr


def test_serve_dev_prints_ready_tokens() -> None:
    http_port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--dev",
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(free_port()),
        ],
        env={k: v for k, v in os.environ.items() if not k.startswith("LOGS_GATEWAY_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(8)]
        tokens = [line.split()[-1] for line in lines if "token" in line]
        assert len(tokens) == 3
        assert all(t.count(".") == 2 for t in tokens)
        assert any(f"127.0.0.1:{http_port}" in line for line in lines)
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
        process.stdout.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "verb", [["serve"], ["token", "service"], ["keys", "generate"], ["config"]]
)
def test_help_is_clear(verb: list[str]) -> None:
    result = run(*verb, "--help")
    assert result.returncode == 0 and "usage: logs-gateway" in result.stdout


def test_bad_flag_is_one_line_and_exit_2() -> None:
    for args in (["serve", "--no-such-flag"], ["serve", "--http-port"], ["token", "user", "x"]):
        result = run(*args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "error:" in result.stderr and "--help" in result.stderr


def test_config_masks_secrets() -> None:
    result = run("config", env={"LOGS_GATEWAY_JWT_SECRET": SECRET})
    assert result.returncode == 0
    assert SECRET not in result.stdout and "jwt_secret = '***'" in result.stdout
    started = time.monotonic()
    assert run("config", "--http-port", "99999").returncode == 2
    assert time.monotonic() - started < 30
