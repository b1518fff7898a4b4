"""The issuers file (`--issuers FILE`, TOML): the identity providers whose tokens are
accepted besides the gateway's own, each with its keys and rights rules (docs/SECURITY.md).

    [[issuers]]
    issuer = "https://sso.example.com/realms/acme"   # keys by OIDC discovery
    audiences = ["logs-gateway"]
    # jwks_url = "https://..."  or  keys_file = "keys/jwks.json"  instead of discovery

    [[issuers.rights]]
    claim = "groups"
    value = "ws-{workspace}-viewers"
    subscribe = ["logs:*:{workspace}:>"]

Every mistake stops the start with one line naming the file, the issuer and the field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.app.jwks import FetchLimits, RemoteKeys
from gateway.core.issuers import Issuer, StaticKeys
from gateway.core.keys import ASYMMETRIC_ALGORITHMS, KeySet, read_key_file
from gateway.core.rights import ClaimRule, LogsClaimRule, Rule

REMOTE_ALGORITHMS = tuple(ASYMMETRIC_ALGORITHMS.values())
_LIMITS = {
    "fetch_timeout_seconds": "timeout",
    "max_fetch_bytes": "max_bytes",
    "min_refresh_seconds": "min_refresh",
    "max_refresh_seconds": "max_refresh",
    "refetch_seconds": "refetch",
    "max_stale_seconds": "max_stale",
}
_FIELDS = {
    "issuer", "audiences", "jwks_url", "keys_file", "algorithms", "leeway_seconds",
    "ca_file", "token_file", "rights", *_LIMITS,
}  # fmt: skip
_RULE_FIELDS = {"claim", "value", "publish", "subscribe", "admin"}


@dataclass
class Trusted:
    """The issuers of a file, and their key sources by kind: the remote ones to run, the
    file ones to read again on SIGHUP."""

    issuers: list[Issuer] = field(default_factory=list)
    remote: list[RemoteKeys] = field(default_factory=list)
    files: list[tuple[StaticKeys, Path]] = field(default_factory=list)

    def reload_files(self) -> None:
        """Read every key file again; a bad one raises ValueError and changes nothing."""
        fresh = [(keys, KeySet(_read_keys(path))) for keys, path in self.files]
        for keys, key_set in fresh:
            keys.keys = key_set


def load_issuers(path: Path) -> Trusted:
    """The issuers of `path`, or ValueError naming the file, the issuer and the problem."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: {e}") from None
    unknown = set(doc) - {"issuers"}
    entries = doc.get("issuers")
    if unknown or not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected one or more [[issuers]] tables and nothing else")
    trusted = Trusted()
    for i, entry in enumerate(entries):
        where = f"{path}: issuer {i + 1} ({str(entry.get('issuer', '?'))[:100]})"
        try:
            _add(trusted, entry, path.parent)
        except (ValueError, TypeError, OSError) as e:
            raise ValueError(f"{where}: {e}") from None
    return trusted


def _add(trusted: Trusted, entry: Mapping[str, Any], folder: Path) -> None:
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(_FIELDS))})")
    name = _get(entry, "issuer", str, None)
    if "jwks_url" in entry and "keys_file" in entry:
        raise ValueError("give jwks_url or keys_file, not both (neither: OIDC discovery)")
    if "keys_file" in entry:
        keys_path = folder / _get(entry, "keys_file", str, None)
        keys = StaticKeys(KeySet(_read_keys(keys_path)))
        trusted.files.append((keys, keys_path))
        source: StaticKeys | RemoteKeys = keys
    else:
        source = _remote(name, entry, folder)
        trusted.remote.append(source)
    algorithms = _strings(entry, "algorithms", list(REMOTE_ALGORITHMS))
    if not set(algorithms) <= set(REMOTE_ALGORITHMS):
        raise ValueError(f"algorithms must be some of {list(REMOTE_ALGORITHMS)}")
    trusted.issuers.append(
        Issuer(
            name,
            tuple(_strings(entry, "audiences", None)),
            source,
            [_rule(r) for r in _get(entry, "rights", list, [])],
            frozenset(algorithms),
            float(_get(entry, "leeway_seconds", (int, float), 5.0)),
        )
    )


def _remote(name: str, entry: Mapping[str, Any], folder: Path) -> RemoteKeys:
    limits = {
        attr: float(_get(entry, key, (int, float), getattr(FetchLimits(), attr)))
        for key, attr in _LIMITS.items()
    }
    limits["max_bytes"] = int(limits["max_bytes"])
    ca_file, token_file = (_file(entry, key, folder) for key in ("ca_file", "token_file"))
    return RemoteKeys(
        name,
        jwks_url=_get(entry, "jwks_url", str, "") or None,
        limits=FetchLimits(**limits),  # type: ignore[arg-type]
        ca_file=ca_file,
        token_file=token_file,
    )


def _rule(entry: Any) -> Rule:
    if not isinstance(entry, dict):
        raise ValueError("each [[issuers.rights]] must be a table")
    unknown = sorted(set(entry) - _RULE_FIELDS)
    if unknown:
        raise ValueError(f"rights: unknown field {unknown[0]!r} (fields: {sorted(_RULE_FIELDS)})")
    claim = _get(entry, "claim", str, None)
    if claim == "logs" and set(entry) == {"claim"}:
        return LogsClaimRule()  # the gateway's own claim shape
    return ClaimRule(
        claim,
        _get(entry, "value", str, None),
        publish=_strings(entry, "publish", []),
        subscribe=_strings(entry, "subscribe", []),
        admin=_get(entry, "admin", bool, False),
    )


def _file(entry: Mapping[str, Any], key: str, folder: Path) -> str | None:
    if key not in entry:
        return None
    path = folder / _get(entry, key, str, None)
    if not path.is_file():
        raise ValueError(f"{key}: no such file {str(path)!r}")
    return str(path)


def _read_keys(path: Path) -> dict[str, Any]:
    return read_key_file(path).keys


def _get(entry: Mapping[str, Any], key: str, kind: Any, default: Any) -> Any:
    if key not in entry:
        if default is None:
            raise ValueError(f"{key!r} is required")
        return default
    value = entry[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"{key!r} has the wrong type ({type(value).__name__})")
    return value


def _strings(entry: Mapping[str, Any], key: str, default: list[str] | None) -> list[str]:
    value: list[Any] = _get(entry, key, list, default)
    if not all(isinstance(v, str) and v for v in value) or (default is None and not value):
        raise ValueError(f"{key!r} must be a list of non-empty strings")
    return value
