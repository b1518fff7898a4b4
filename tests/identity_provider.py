"""An identity provider served by the tests on loopback (aiohttp): OIDC discovery and JWKS
documents in the shapes of Keycloak, Auth0, Entra ID and a Kubernetes API server, each
request counted, with faults on demand (slow, huge, failing, down), and tokens signed in
each provider's shape (its claims, `kid`s, algorithm)."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.core.keys import PrivateKey, public_jwk
from tests.conftest import free_port

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # an Entra ID tenant id's shape
ENTRA_CLIENT = "6e74172b-be56-4843-9ff4-e66a39bb12e3"


@dataclass
class SigningKey:
    kid: str
    private: PrivateKey
    extra: dict[str, Any] = field(default_factory=dict)  # JWK members a provider adds

    @property
    def algorithm(self) -> str:
        return "ES256" if isinstance(self.private, ec.EllipticCurvePrivateKey) else "RS256"

    def jwk(self) -> dict[str, Any]:
        jwk = public_jwk(self.private.public_key(), self.kid) | self.extra
        return {k: v for k, v in jwk.items() if v is not None}  # extra {"alg": None} drops it


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def pooled_key(i: int) -> rsa.RSAPrivateKey:
    """The providers' keys, made once per test process (an RSA key takes a while)."""
    return rsa_key()


@dataclass
class Tenant:
    """One issuer the provider serves: where its documents are and the keys it publishes."""

    name: str
    issuer_path: str  # under the provider's address, or a whole URL
    jwks_path: str
    discovery_path: str | None
    keys: list[SigningKey]
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)  # e.g. an encryption key
    max_age: int | None = 300
    issuer: str = ""  # set by Provider.add


class Provider:
    """The HTTP server; `tenants` by name. `fetches` counts requests by path."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tenants: dict[str, Tenant] = {}
        self.fetches: Counter[str] = Counter()
        self.delay = 0.0  # seconds before each answer
        self.huge = 0  # bytes of padding added to JWKS answers
        self.failing = False  # answer 500
        self.redirect_to: str | None = None  # answer JWKS requests with a 302 there
        self.discovery_changes: dict[str, Any] = {}  # members of every discovery document
        self._runner: web.AppRunner | None = None

    def add(self, *tenants: Tenant) -> None:
        for tenant in tenants:
            absolute = tenant.issuer_path.startswith("https://")
            tenant.issuer = tenant.issuer_path if absolute else self.url + tenant.issuer_path
            self.tenants[tenant.name] = tenant

    def jwks_fetches(self, tenant: str) -> int:
        return self.fetches[self.tenants[tenant].jwks_path]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._answer)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """The provider goes down: its port refuses connections until start()."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.fetches[request.path] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing:
            return web.Response(status=500, text="internal error")
        for tenant in self.tenants.values():
            if request.path == tenant.discovery_path:
                return web.json_response(self._discovery(tenant))
            if request.path == tenant.jwks_path:
                return self._jwks(tenant)
        return web.Response(status=404)

    def _discovery(self, tenant: Tenant) -> dict[str, Any]:
        return {
            "issuer": tenant.issuer,
            "jwks_uri": self.url + tenant.jwks_path,
            "authorization_endpoint": tenant.issuer + "/authorize",
            "token_endpoint": tenant.issuer + "/token",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
        } | self.discovery_changes

    def _jwks(self, tenant: Tenant) -> web.Response:
        if self.redirect_to is not None:
            return web.Response(status=302, headers={"Location": self.redirect_to})
        doc: dict[str, Any] = {"keys": [k.jwk() for k in tenant.keys] + tenant.extra_jwks}
        if self.huge:
            doc["padding"] = "x" * self.huge
        headers = {"Cache-Control": f"public, max-age={tenant.max_age}"} if tenant.max_age else {}
        return web.json_response(doc, headers=headers)


def sign(
    key: SigningKey, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None
) -> str:
    return jwt.encode(
        dict(claims),
        key.private,
        algorithm=key.algorithm,
        headers={"kid": key.kid, **(headers or {})},
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _thumb(text: str) -> str:
    """A 27-character x5t-like id (a certificate's SHA-1 thumbprint is 20 bytes)."""
    return _b64(hashlib.sha256(text.encode()).digest()[:20])


# -- the providers' shapes ------------------------------------------------------------------


def keycloak(realm: str = "acme") -> Tenant:
    """Keycloak: discovery under /realms/{realm}; a random 43-character kid; RS256 for
    signing beside an RSA-OAEP key for encryption in the same JWKS."""
    enc = public_jwk(pooled_key(1).public_key(), _b64(secrets.token_bytes(32)))
    enc |= {"use": "enc", "alg": "RSA-OAEP"}
    return Tenant(
        "keycloak",
        f"/realms/{realm}",
        f"/realms/{realm}/protocol/openid-connect/certs",
        f"/realms/{realm}/.well-known/openid-configuration",
        [SigningKey(_b64(secrets.token_bytes(32)), pooled_key(0))],
        [enc],
    )


def keycloak_claims(
    tenant: Tenant, groups: list[str], audience: str = "logs-gateway"
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "exp": now + 300,
        "iat": now,
        "auth_time": now - 5,
        "jti": str(uuid.uuid4()),
        "iss": tenant.issuer,
        "aud": [audience, "account"],
        "sub": str(uuid.uuid4()),
        "typ": "Bearer",
        "azp": "logs-ui",
        "sid": str(uuid.uuid4()),
        "acr": "1",
        "realm_access": {"roles": ["offline_access", "uma_authorization", "default-roles-acme"]},
        "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
        "scope": "openid profile email",
        "email_verified": True,
        "preferred_username": "alice",
        "groups": groups,
    }


def auth0() -> Tenant:
    """Auth0: the issuer ends in `/`; JWKS at /.well-known/jwks.json with x5c and x5t."""
    key = SigningKey(_b64(secrets.token_bytes(16)), pooled_key(2))
    key.extra = {
        "x5t": _thumb(key.kid),
        "x5c": ["MIIDDTCCAfWgAwIBAgIJ"],
    }
    return Tenant(
        "auth0",
        "/",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        [key],
    )


def auth0_claims(tenant: Tenant, scope: str, audience: str = "logs-gateway") -> dict[str, Any]:
    """A machine-to-machine (client credentials) access token."""
    now = int(time.time())
    return {
        "iss": tenant.issuer,
        "sub": "Xq8bZ1yKp0wLm3nV@clients",
        "aud": audience,
        "iat": now,
        "exp": now + 86400,
        "scope": scope,
        "gty": "client-credentials",
        "azp": "Xq8bZ1yKp0wLm3nV",
        "permissions": scope.split(),
    }


def entra() -> Tenant:
    """Entra ID (v2.0 endpoint): the kid is the x5t; JWKs carry no `alg`, and an `issuer`
    template (the common keys serve every tenant)."""
    key = SigningKey(_thumb(secrets.token_hex(8)), pooled_key(3))
    template = "https://login.microsoftonline.com/{tenantid}/v2.0"
    key.extra = {"alg": None, "x5t": key.kid, "x5c": ["MIIC/TCCAeWgAwIBAgIIU"], "issuer": template}
    return Tenant(
        "entra",
        f"/{TENANT}/v2.0",
        f"/{TENANT}/discovery/v2.0/keys",
        f"/{TENANT}/v2.0/.well-known/openid-configuration",
        [key],
        max_age=None,
    )


def entra_claims(tenant: Tenant, roles: list[str]) -> dict[str, Any]:
    """An app-only access token for the gateway's app registration (roles, no scp)."""
    now = int(time.time())
    return {
        "aud": ENTRA_CLIENT,
        "iss": tenant.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + 3599,
        "aio": "k2BgYDiE4Xvf1+vO2aZm",
        "azp": "0b3f1c52-8d5e-4c8c-9a0d-3e1f2a3b4c5d",
        "azpacr": "1",
        "oid": "5f2c5d8e-1b3a-4e6f-8a9b-0c1d2e3f4a5b",
        "rh": "0.AXEA",
        "roles": roles,
        "sub": "5f2c5d8e-1b3a-4e6f-8a9b-0c1d2e3f4a5b",
        "tid": TENANT,
        "uti": "fQ2bYw3X8kO1V2lMAAA",
        "ver": "2.0",
    }


K8S_ISSUER = "https://kubernetes.default.svc.cluster.local"


def kubernetes() -> Tenant:
    """A Kubernetes API server's service-account issuer: the issuer is the in-cluster name
    (reached here by its JWKS URL), the kid a key thumbprint, RS256."""
    key = pooled_key(4)
    kid = _b64(hashlib.sha256(json.dumps(public_jwk(key.public_key())).encode()).digest())
    return Tenant("kubernetes", K8S_ISSUER, "/openid/v1/jwks", None, [SigningKey(kid, key)])


def kubernetes_claims(
    namespace: str, account: str, audience: str = "logs-gateway"
) -> dict[str, Any]:
    """A projected service-account token (audience of the gateway, one hour)."""
    now = int(time.time())
    return {
        "aud": [audience],
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "iss": K8S_ISSUER,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": str(uuid.uuid4())},
            "pod": {"name": f"{account}-7d9f8c-x2k4q", "uid": str(uuid.uuid4())},
            "serviceaccount": {"name": account, "uid": str(uuid.uuid4())},
            "warnafter": now + 3000,
        },
        "sub": f"system:serviceaccount:{namespace}:{account}",
    }
