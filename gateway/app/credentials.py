"""Keys from configuration: the verifier the servers use and the signer the CLI uses.

How a token's key is chosen: an HS256 token is checked against LOGS_GATEWAY_JWT_SECRET; an
EdDSA / ES256 / RS256 token against the public key its `kid` names, or, without a `kid`,
against the only configured key of its algorithm. A JWKS key's `kid` is its own (else its
RFC 7638 thumbprint); a PEM key's is its RFC 7638 thumbprint, as `logs-gateway keys
generate` and the CLI's signer use.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.app.config import Config, ConfigError
from gateway.app.issuers import Trusted, load_issuers
from gateway.core.keys import PublicKey, key_id, load_private_key, public_jwk, read_key_file
from gateway.core.tokens import Signer, Verifier

log = logging.getLogger("logs_gateway")

MISSING_KEY = (
    "no token key configured: set LOGS_GATEWAY_JWT_SECRET (HS256, >= 32 bytes) or "
    "LOGS_GATEWAY_JWT_PUBLIC_KEYS (PEM/JWKS file; make one with `logs-gateway keys generate`), "
    "or run with --dev for a throwaway key"
)


def with_dev_secret(config: Config) -> Config:
    """Dev mode keeps a configured key of its own, else makes a random secret for this run."""
    if config.jwt_secret or config.jwt_public_keys:
        return config
    return replace(config, jwt_secret=secrets.token_hex(32))


@dataclass(frozen=True, slots=True)
class Trust:
    """The verifier the servers use, and the issuers file's key sources (the remote ones
    the server keeps fresh, the files it reads again on SIGHUP)."""

    verifier: Verifier
    issuers: Trusted


def trust(config: Config) -> Trust:
    if not config.has_verify_key:
        raise ConfigError(MISSING_KEY)
    issuers = _issuers(config)
    own_keys = public_keys(config)
    try:
        verifier = Verifier(
            secret=_secret(config),
            public_keys=own_keys,
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            leeway=config.jwt_leeway,
            cache_entries=config.token_cache_entries,
            trusted=issuers.issuers,
        )
    except ValueError as e:
        raise ConfigError(f"LOGS_GATEWAY_ISSUERS: {e}") from None  # an `iss` trusted twice
    for remote in issuers.remote:
        remote.on_change = verifier.forget
    return Trust(verifier, issuers)


def reload(trust: Trust, config: Config) -> None:
    """Read the key files again (on SIGHUP) and verify with what they hold now; on an error
    the keys in use stay, and the error is raised (ConfigError) for the caller to log."""
    if config.jwt_secret or config.jwt_public_keys:
        trust.verifier.use_keys(secret=_secret(config), public_keys=public_keys(config))
    try:
        trust.issuers.reload_files()
    except (ValueError, OSError) as e:
        raise ConfigError(f"LOGS_GATEWAY_ISSUERS={config.issuers!r}: {e}") from None
    trust.verifier.forget()


def _issuers(config: Config) -> Trusted:
    if not config.issuers:
        return Trusted()
    try:
        return load_issuers(Path(config.issuers))
    except ValueError as e:
        raise ConfigError(f"LOGS_GATEWAY_ISSUERS: {e}") from None


def public_keys(config: Config) -> dict[str, PublicKey]:
    """The usable keys of LOGS_GATEWAY_JWT_PUBLIC_KEYS; the keys it skips are named in one
    log line, and a file with no usable key is a ConfigError naming it."""
    path = config.jwt_public_keys
    if not path:
        return {}
    try:
        found = read_key_file(Path(path))
    except (ValueError, OSError) as e:
        raise ConfigError(f"LOGS_GATEWAY_JWT_PUBLIC_KEYS={path!r}: {e}") from None
    if found.skipped:
        log.warning("verification keys skipped", extra={"file": path, "skipped": found.skipped})
    return found.keys


def _secret(config: Config) -> bytes | None:
    return config.jwt_secret.encode() if config.jwt_secret else None


def signer(config: Config) -> Signer:
    """Sign with the private key if one is configured, else with the HS256 secret."""
    if config.jwt_private_key:
        try:
            key = load_private_key(Path(config.jwt_private_key))
        except (ValueError, OSError) as e:
            raise ConfigError(
                f"LOGS_GATEWAY_JWT_PRIVATE_KEY={config.jwt_private_key!r}: {e}"
            ) from None
        return Signer(
            private_key=key,
            kid=key_id(key.public_key()),
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
        )
    if config.jwt_secret:
        return Signer(
            secret=config.jwt_secret.encode(),
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
        )
    raise ConfigError(
        "no signing key configured: set LOGS_GATEWAY_JWT_SECRET or LOGS_GATEWAY_JWT_PRIVATE_KEY"
    )


def generate_keys(directory: Path) -> tuple[Path, Path, str]:
    """Write a new Ed25519 key pair: `<kid>.key.pem` (0600) and `<kid>.pub.pem`, and add the
    public key to `jwks.json` so the gateway can verify old and new keys during rotation."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    kid = key_id(key.public_key())
    private_path = directory / f"{kid}.key.pem"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path = directory / f"{kid}.pub.pem"
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    jwks_path = directory / "jwks.json"
    jwks = json.loads(jwks_path.read_text()) if jwks_path.exists() else {"keys": []}
    jwks["keys"].append(public_jwk(key.public_key(), kid))
    jwks_path.write_text(json.dumps(jwks, indent=2) + "\n")
    return private_path, jwks_path, kid
