"""Tokens from identity providers (issue 26): a provider served by the tests on loopback
(tests/identity_provider.py), tokens in the shapes of Keycloak, Auth0, Entra ID and
Kubernetes service accounts, verified by a real gateway over HTTP, with the provider's
faults: down at start and later, slow, 10 MB answers, rotation, floods of unknown kids."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from logs_gateway import Publisher, token_file

from gateway.core.errors import GatewayError
from gateway.core.rights import ClaimRule, evaluate, rights_of
from tests.conftest import Running, running_gateway, wait_for
from tests.identity_provider import (
    ENTRA_CLIENT,
    Provider,
    SigningKey,
    Tenant,
    auth0,
    auth0_claims,
    entra,
    entra_claims,
    keycloak,
    keycloak_claims,
    kubernetes,
    kubernetes_claims,
    rsa_key,
    sign,
)
from tests.sse_client import open_stream

FAST = {"min_refresh_seconds": 0.2, "refetch_seconds": 0.5, "fetch_timeout_seconds": 2}
ETL = "logs:etl:acme:wf1"


def issuers_toml(provider: Provider, **limits: float) -> str:
    t = provider.tenants
    settings = "".join(f"{k} = {v}\n" for k, v in (FAST | limits).items())
    return f'''
[[issuers]]
issuer = "{t["keycloak"].issuer}"
audiences = ["logs-gateway"]
{settings}
[[issuers.rights]]
claim = "groups"
value = "/ws-{{workspace}}-viewers"
subscribe = ["logs:*:{{workspace}}:>"]

[[issuers]]
issuer = "{t["auth0"].issuer}"
audiences = ["logs-gateway"]
{settings}
[[issuers.rights]]
claim = "scope"
value = "logs:admin"
admin = true

[[issuers]]
issuer = "{t["entra"].issuer}"
audiences = ["{ENTRA_CLIENT}"]
{settings}
[[issuers.rights]]
claim = "roles"
value = "Logs.Publish.{{service}}"
publish = ["logs:{{service}}:>"]

[[issuers]]
issuer = "{t["kubernetes"].issuer}"
jwks_url = "{provider.url}{t["kubernetes"].jwks_path}"
audiences = ["logs-gateway"]
{settings}
[[issuers.rights]]
claim = "sub"
value = "system:serviceaccount:etl:runner"
publish = ["logs:etl:>"]

[[issuers.rights]]
claim = "sub"
value = "system:serviceaccount:{{namespace}}:publisher"
publish = ["logs:{{namespace}}:>"]
'''


@pytest.fixture
def tenants() -> dict[str, Tenant]:
    return {t.name: t for t in (keycloak(), auth0(), entra(), kubernetes())}


@asynccontextmanager
async def idp_gateway(
    tmp_path: Path,
    tenants: dict[str, Tenant],
    *,
    start_provider: bool = True,
    own_secret: bool = True,
    **limits: float,
) -> AsyncIterator[tuple[Provider, Running]]:
    provider = Provider()
    provider.add(*tenants.values())
    path = tmp_path / "issuers.toml"
    path.write_text(issuers_toml(provider, **limits))
    if start_provider:
        await provider.start()
    overrides: dict[str, Any] = {"issuers": str(path)}
    if not own_secret:
        overrides["jwt_secret"] = ""
    try:
        async with running_gateway(**overrides) as run:
            yield provider, run
    finally:
        await provider.stop()


async def status(run: Running, method: str, path: str, token: str, **kw: Any) -> int:
    async with httpx.AsyncClient(base_url=run.http, timeout=10) as client:
        headers = {"Authorization": f"Bearer {token}"}
        if method == "GET" and path.startswith("/api/logs/stream"):
            async with client.stream("GET", path, headers=headers, **kw) as response:
                return response.status_code
        return (await client.request(method, path, headers=headers, **kw)).status_code


async def publish(run: Running, token: str, channel: str) -> int:
    body = {"channel": channel, "message": "hello"}
    return await status(run, "POST", "/api/logs/publish", token, json=body)


async def accepted(run: Running, token: str) -> None:
    """Wait until the token verifies (its issuer's keys are in): the admin route answers
    200 or 403, not 401 or 503."""
    deadline = time.monotonic() + 10
    while await status(run, "GET", "/admin/logs/stats", token) not in (200, 403):
        assert time.monotonic() < deadline, "the token was never accepted"
        await asyncio.sleep(0.05)


def gateway_of(run: Running) -> Any:
    assert run.gateway is not None
    return run.gateway


async def test_each_providers_token_gets_the_rights_its_rules_give(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    async with idp_gateway(tmp_path, tenants) as (provider, run):
        t = provider.tenants
        viewer = sign(
            t["keycloak"].keys[0], keycloak_claims(t["keycloak"], ["/ws-acme-viewers", "/staff"])
        )
        await accepted(run, viewer)
        assert await status(run, "GET", f"/api/logs/stream?channels={ETL}", viewer) == 200
        assert (
            await status(run, "GET", "/api/logs/stream?channels=logs:etl:other:wf1", viewer) == 403
        )
        assert await publish(run, viewer, ETL) == 403

        runner = sign(t["kubernetes"].keys[0], kubernetes_claims("etl", "runner"))
        await accepted(run, runner)
        assert await publish(run, runner, ETL) == 200
        assert await publish(run, runner, "logs:billing:acme:x") == 403

        app = sign(
            t["entra"].keys[0],
            entra_claims(t["entra"], ["Logs.Publish.billing"]),
            {"x5t": t["entra"].keys[0].kid},
        )
        await accepted(run, app)
        assert await publish(run, app, "logs:billing:acme:x") == 200
        assert await publish(run, app, ETL) == 403

        admin = sign(t["auth0"].keys[0], auth0_claims(t["auth0"], "openid logs:admin"))
        plain = sign(t["auth0"].keys[0], auth0_claims(t["auth0"], "openid logs:read"))
        await accepted(run, admin)
        assert await status(run, "GET", "/admin/logs/stats", admin) == 200
        assert await status(run, "GET", "/admin/logs/stats", plain) == 403
        # The gateway's own tokens are still its own issuer's.
        assert await publish(run, run.signer.mint("svc", publish=["logs:>"]), ETL) == 200
        async with httpx.AsyncClient() as client:
            ready = (await client.get(run.http + "/ready")).json()
        assert set(ready["issuers"].values()) == {"ok"}
        assert len(ready["issuers"]) == 5


async def test_a_token_is_checked_only_with_its_own_issuers_keys(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    async with idp_gateway(tmp_path, tenants) as (provider, run):
        t = provider.tenants
        verifier = gateway_of(run).verifier
        k8s, kc = t["kubernetes"].keys[0], t["keycloak"].keys[0]
        await accepted(run, sign(k8s, kubernetes_claims("etl", "runner")))
        await accepted(run, sign(kc, keycloak_claims(t["keycloak"], [])))
        forged_claims = kubernetes_claims("etl", "runner")
        # Keycloak's key under its own kid, Kubernetes' `iss`: Kubernetes has no such kid.
        with pytest.raises(GatewayError) as e:
            verifier.verify(sign(kc, forged_claims))
        assert e.value.reason in ("unknown_kid", "unknown_kid_refetch")
        # Keycloak's key under Kubernetes' kid: the signature is not Kubernetes'.
        with pytest.raises(GatewayError) as e:
            verifier.verify(sign(SigningKey(k8s.kid, kc.private), forged_claims))
        assert e.value.reason == "bad_signature"
        # A provider nobody trusts, and a trusted one for another audience.
        with pytest.raises(GatewayError) as e:
            verifier.verify(sign(k8s, forged_claims | {"iss": "https://evil.example"}))
        assert e.value.reason == "bad_issuer"
        with pytest.raises(GatewayError) as e:
            verifier.verify(sign(k8s, kubernetes_claims("etl", "runner", audience="vault")))
        assert e.value.reason == "bad_audience"
        # An issuer's tokens of another algorithm than its keys', and HS256 keyed with the
        # gateway's own secret but naming the provider.
        with pytest.raises(GatewayError) as e:
            verifier.verify(jwt_hs256(forged_claims))
        assert e.value.reason == "bad_algorithm"


def jwt_hs256(claims: dict[str, Any]) -> str:
    import jwt

    from tests.conftest import SECRET

    return jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "x"})


async def test_claim_values_never_widen_a_pattern(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    attempts = [
        "/ws-*-viewers", "/ws->-viewers", "/ws-acme:etl-viewers", "/ws-acme:>-viewers",
        "/ws-a b-viewers", "/ws-\u0430cme-viewers", "/ws-acme\n-viewers",
        "/ws-" + "a" * 65 + "-viewers",
        "/ws--viewers", "/ws-%2A-viewers", "/ws-*:*-viewers",
    ]  # fmt: skip
    async with idp_gateway(tmp_path, tenants) as (provider, run):
        t = provider.tenants
        verifier = gateway_of(run).verifier
        kc = t["keycloak"].keys[0]
        await accepted(run, sign(kc, keycloak_claims(t["keycloak"], [])))
        token = sign(kc, keycloak_claims(t["keycloak"], [*attempts, "/ws-acme-viewers"]))
        principal = verifier.verify(token)
        assert [p.text for p in principal.subscribe] == ["logs:*:acme:>"]
        assert not principal.admin and not principal.publish
        refused = [f for f in verifier.explain(token).findings if f.refused]
        assert len(refused) == len(attempts) - 1  # "/ws--viewers" captures nothing: no match
        for channel in ("logs:etl:other:x", "logs:x:y:z"):
            assert await status(run, "GET", f"/api/logs/stream?channels={channel}", token) == 403
        k8s = t["kubernetes"].keys[0]
        for sub in ("system:serviceaccount:etl:x:publisher", "system:serviceaccount:*:publisher",
                    "system:serviceaccount:>:publisher"):  # fmt: skip
            claims = kubernetes_claims("etl", "x") | {"sub": sub}
            assert verifier.verify(sign(k8s, claims)).publish == ()
        good = kubernetes_claims("billing", "publisher")
        assert [p.text for p in verifier.verify(sign(k8s, good)).publish] == ["logs:billing:>"]


async def test_a_flood_of_unknown_kids_fetches_at_most_once_per_interval(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    async with idp_gateway(tmp_path, tenants) as (provider, run):
        t = provider.tenants
        verifier = gateway_of(run).verifier
        k8s = t["kubernetes"].keys[0]
        await accepted(run, sign(k8s, kubernetes_claims("etl", "runner")))
        before = provider.jwks_fetches("kubernetes")
        claims = kubernetes_claims("etl", "runner")
        tokens = [sign(SigningKey(secrets.token_hex(8), k8s.private), claims) for _ in range(200)]
        started = time.monotonic()
        refused: set[str] = set()
        for burst in range(20):  # 20,000 tokens, in bursts of 1,000 as fast as the loop goes
            for i in range(1000):
                # 200 made-up kids in turn; a refused token is never cached, so each is
                # looked up again.
                try:
                    verifier.verify(tokens[(burst * 1000 + i) % len(tokens)])
                except GatewayError as e:
                    refused.add(e.reason)
            await asyncio.sleep(0.01)  # the fetch, if one was asked for, runs here
        elapsed = time.monotonic() - started
        fetches = provider.jwks_fetches("kubernetes") - before
        assert refused <= {"unknown_kid", "unknown_kid_refetch"}
        assert 1 <= fetches <= elapsed / FAST["refetch_seconds"] + 1
        # And over HTTP, 300 at once: still at most one more fetch per interval.
        before = provider.jwks_fetches("kubernetes")
        started = time.monotonic()
        codes = await asyncio.gather(*(publish(run, tok, ETL) for tok in tokens[:300]))
        assert set(codes) <= {401, 503}
        bound = (time.monotonic() - started) / FAST["refetch_seconds"] + 1
        assert provider.jwks_fetches("kubernetes") - before <= bound


async def test_key_rotation_while_streams_are_open(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    async with idp_gateway(tmp_path, tenants) as (provider, run):
        tenant = provider.tenants["keycloak"]
        old = tenant.keys[0]
        service = run.signer.mint("svc", publish=["logs:>"])
        first = sign(old, keycloak_claims(tenant, ["/ws-acme-viewers"]))
        await accepted(run, first)
        async with open_stream(run.http, ETL, first) as stream1:
            new = SigningKey("rotated-" + secrets.token_hex(4), rsa_key())
            tenant.keys.append(new)
            tenant.max_age = 1  # from the next fetch on, the keys are fetched each second
            second = sign(new, keycloak_claims(tenant, ["/ws-acme-viewers"]))
            await accepted(run, second)  # an unknown kid brings the new keys at once
            async with open_stream(run.http, ETL, second) as stream2:
                assert await publish(run, service, ETL) == 200
                assert (await stream1.take(1))[0].data["message"] == "hello"
                assert (await stream2.take(1))[0].data["message"] == "hello"
                tenant.keys.remove(old)  # the provider stops publishing the old key
                await wait_for(lambda: old.kid not in keys_of(run, tenant), timeout=10)
                # The old key's token is refused from now, though it was cached...
                assert await status(run, "GET", f"/api/logs/stream?channels={ETL}", first) in (
                    401,
                    503,
                )
                # ...while the stream it opened runs on to its token's expiry.
                assert await publish(run, service, ETL) == 200
                assert (await stream1.take(1))[0].data["message"] == "hello"
                assert (await stream2.take(1))[0].data["message"] == "hello"


def keys_of(run: Running, tenant: Tenant) -> set[str]:
    [issuer] = [i for i in gateway_of(run).verifier.issuers if i.name == tenant.issuer]
    try:
        return set(issuer.keys.current().by_kid)
    except GatewayError:
        return set()


async def test_provider_down_at_start_then_up(tmp_path: Path, tenants: dict[str, Tenant]) -> None:
    async with idp_gateway(tmp_path, tenants, start_provider=False, own_secret=False) as (
        provider,
        run,
    ):
        k8s = provider.tenants["kubernetes"].keys[0]
        token = sign(k8s, kubernetes_claims("etl", "runner"))
        async with httpx.AsyncClient() as client:
            ready = await client.get(run.http + "/ready")
            assert ready.status_code == 503
            assert set(ready.json()["issuers"].values()) == {"no keys"}
            answer = await client.post(
                run.http + "/api/logs/publish",
                json={"channel": ETL, "message": "x"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert answer.status_code == 503
        assert "cannot be checked now" in answer.json()["error"]["message"]
        assert answer.headers["Retry-After"] == "1"  # refetch_seconds 0.5, rounded up
        await provider.start()
        await accepted(run, token)
        assert await publish(run, token, ETL) == 200
        async with httpx.AsyncClient() as client:
            await wait_for_ready(client, run)


async def wait_for_ready(client: httpx.AsyncClient, run: Running) -> None:
    deadline = time.monotonic() + 10
    while (await client.get(run.http + "/ready")).status_code != 200:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_provider_down_past_max_stale_refuses_every_token(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    async with idp_gateway(tmp_path, tenants, own_secret=False, max_stale_seconds=1.5) as (
        provider,
        run,
    ):
        k8s = provider.tenants["kubernetes"].keys[0]
        token = sign(k8s, kubernetes_claims("etl", "runner"))
        await accepted(run, token)
        assert await publish(run, token, ETL) == 200  # and now cached
        await provider.stop()
        assert await publish(run, token, ETL) == 200  # the last good keys are kept
        issuer = provider.tenants["kubernetes"].issuer
        verifier = gateway_of(run).verifier
        # Every tenant's keys go stale 1.5 s after their own last fetch, one after another:
        # /ready is 503 once none is left (a loaded machine spreads the fetches apart).
        await wait_for(lambda: not any(s.usable for s in verifier.status().values()), timeout=10)
        assert await publish(run, token, ETL) == 503
        async with httpx.AsyncClient() as client:
            ready = await client.get(run.http + "/ready")
            metrics = (await client.get(run.http + "/metrics")).text
        assert ready.status_code == 503
        assert ready.json()["issuers"][issuer] == "stale"
        assert f'logs_gateway_issuer_keys_usable{{issuer="{issuer}"}} 0.0' in metrics
        assert (
            f'logs_gateway_issuer_key_fetches_total{{issuer="{issuer}",result="connection"}}'
            in metrics
        )
        await provider.start()
        await accepted(run, token)
        assert await publish(run, token, ETL) == 200


async def test_a_slow_provider_is_cut_off_and_holds_nothing_up(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    async with idp_gateway(tmp_path, tenants, fetch_timeout_seconds=0.5) as (provider, run):
        provider.delay = 5.0
        service = run.signer.mint("svc", publish=["logs:>"])
        started = time.monotonic()
        assert await publish(run, service, ETL) == 200  # while every fetch hangs
        assert time.monotonic() - started < 2.5
        issuer = provider.tenants["kubernetes"].issuer
        verifier = gateway_of(run).verifier
        await wait_for(lambda: verifier.status()[issuer].fetches.get("timeout", 0) >= 1, timeout=10)
        token = sign(provider.tenants["kubernetes"].keys[0], kubernetes_claims("etl", "runner"))
        assert await publish(run, token, ETL) == 503


async def test_a_ten_megabyte_answer_is_refused_and_the_last_keys_kept(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    tenants["kubernetes"].max_age = 1  # fetched each second
    async with idp_gateway(tmp_path, tenants) as (provider, run):
        tenant = provider.tenants["kubernetes"]
        token = sign(tenant.keys[0], kubernetes_claims("etl", "runner"))
        await accepted(run, token)
        provider.huge = 10 * 1024 * 1024
        verifier = gateway_of(run).verifier
        await wait_for(
            lambda: verifier.status()[tenant.issuer].fetches.get("too_large", 0) >= 1, 10
        )
        assert await publish(run, token, ETL) == 200
        assert verifier.status()[tenant.issuer].usable


async def test_redirects_stay_on_the_providers_origin(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    async with idp_gateway(tmp_path, tenants, own_secret=False) as (provider, run):
        provider.redirect_to = f"http://localhost:{provider.port}/elsewhere"
        tenant = provider.tenants["kubernetes"]
        verifier = gateway_of(run).verifier
        await wait_for(
            lambda: verifier.status()[tenant.issuer].fetches.get("refused_url", 0) >= 1, 10
        )
        assert not verifier.status()[tenant.issuer].usable
        assert provider.fetches["/elsewhere"] == 0


HEAD = '[[issuers]]\nissuer = "https://a.example"\naudiences = ["x"]\n'
RULE = '[[issuers.rights]]\nclaim = "groups"\nvalue = "g-{ws}"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEAD + 'keys_url = "y"', "unknown field 'keys_url'"),
        ('[[issuers]]\nissuer = "http://sso.example"\naudiences = ["x"]', "only over https"),
        ('[[issuers]]\nissuer = "https://a.example"\naudiences = []', "'audiences' must be"),
        (HEAD + 'jwks_url = "https://a.example/k"\nkeys_file = "k"', "not both"),
        (HEAD + 'jwks_url = "http://10.0.0.1/keys"', "only over https"),
        (HEAD + 'algorithms = ["HS256"]', "algorithms must be"),
        (HEAD + RULE + 'subscribe = ["logs:{other}:>"]', "{other}, not in the value"),
        (HEAD + RULE + 'subscribe = ["logs:{ws}>"]', "segment"),
        (HEAD + RULE, "grants nothing"),
        (HEAD + "max_stale_seconds = 0", "greater than 0"),
        (
            '[[issuers]]\nissuer = "logs-gateway"\naudiences = ["x"]\nkeys_file = "jwks.json"',
            "trusted once",
        ),
        ("issuers = 3", "[[issuers]]"),
    ],
)
def test_a_bad_issuers_file_stops_the_start_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    from dataclasses import replace

    from gateway.app import credentials
    from gateway.app.config import ConfigError
    from gateway.app.credentials import generate_keys
    from tests.conftest import make_config

    generate_keys(tmp_path)
    path = tmp_path / "issuers.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        credentials.trust(replace(make_config(), issuers=str(path)))
    assert message in str(e.value)
    assert str(e.value).startswith("LOGS_GATEWAY_ISSUERS: ")


async def test_rights_command_shows_what_a_token_may_do_and_why(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    import sys

    async with idp_gateway(tmp_path, tenants) as (provider, _run):
        t = provider.tenants["keycloak"]
        token = sign(t.keys[0], keycloak_claims(t, ["/ws-acme-viewers", "/ws-*-viewers"]))
        shown = await rights(sys.executable, tmp_path / "issuers.toml", token)
        assert shown[0] == 0, shown[1]
        lines = shown[1].splitlines()
        assert lines[0] == f"issuer: {t.issuer} (keys: ok)"
        rule = "rule groups = '/ws-{workspace}-viewers'"
        assert f"{rule}: value '/ws-acme-viewers' grants subscribe logs:*:acme:>" in lines
        assert any(
            "'/ws-*-viewers' gives nothing: {workspace} would be '*'" in line for line in lines
        )
        assert "subscribe: logs:*:acme:>" in lines
        forged = sign(SigningKey(t.keys[0].kid, rsa_key()), keycloak_claims(t, []))
        code, out = await rights(sys.executable, tmp_path / "issuers.toml", forged)
        assert code == 1
        assert out.strip() == "refused: token signature does not verify (bad_signature)"


async def rights(python: str, issuers: Path, token: str) -> tuple[int, str]:
    from tests.conftest import SECRET

    process = await asyncio.create_subprocess_exec(
        python, "-m", "gateway", "rights", "-",
        env={"LOGS_GATEWAY_ISSUERS": str(issuers), "LOGS_GATEWAY_JWT_SECRET": SECRET},
        stdin=PIPE, stdout=PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate(token.encode())
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_a_pod_publishes_with_its_rotating_service_account_token(
    tmp_path: Path, tenants: dict[str, Tenant]
) -> None:
    """The SDK reads the projected token file again before the token expires: the kubelet
    has put a new one there, and publishing goes on past the first token's expiry."""
    async with idp_gateway(tmp_path, tenants, leeway_seconds=0) as (provider, run):
        key = provider.tenants["kubernetes"].keys[0]
        short = kubernetes_claims("etl", "runner") | {"exp": int(time.time()) + 4}
        path = tmp_path / "token"
        path.write_text(sign(key, short))
        await accepted(run, path.read_text())
        async with Publisher(token_file(path), run.grpc_target) as pub:
            await pub.publish(ETL, "first")
            await pub.flush(timeout=10)
            path.write_text(sign(key, kubernetes_claims("etl", "runner")))  # the kubelet's turn
            while time.time() < short["exp"] + 0.5:
                await asyncio.sleep(0.1)
            await pub.publish(ETL, "after the first token expired")
            await pub.flush(timeout=10)
            assert (pub.stats.acked, pub.stats.failed) == (2, 0)


def test_rules_read_claims_as_providers_send_them() -> None:
    """`scope` / `scp` are space-separated; `a.b` reads inside an object claim (Keycloak's
    realm_access.roles) unless a claim is named `a.b` itself (Auth0's namespaced claims
    are URLs with dots); values that are not strings hold nothing."""
    roles = ClaimRule("realm_access.roles", "logs-{service}-writer", publish=["logs:{service}:>"])
    claims = {"realm_access": {"roles": ["offline_access", "logs-etl-writer", 7, None]}}
    assert [p.text for p in rights_of(evaluate([roles], claims)).publish] == ["logs:etl:>"]
    namespaced = ClaimRule("https://acme.example/groups", "ops", admin=True)
    assert rights_of(evaluate([namespaced], {"https://acme.example/groups": ["ops"]})).admin
    scope = ClaimRule("scp", "Logs.Read.{ws}", subscribe=["logs:*:{ws}:>"])
    found = evaluate([scope], {"scp": "User.Read Logs.Read.acme  Logs.Read.beta"})
    assert [p.text for p in rights_of(found).subscribe] == ["logs:*:acme:>", "logs:*:beta:>"]
    assert evaluate([scope], {"scp": ["Logs.Read.acme"], "scope": 3}) != []
    assert evaluate([roles], {"realm_access": "logs-etl-writer"}) == []
    # A whole value with no placeholder matches only itself.
    exact = ClaimRule("sub", "system:serviceaccount:etl:runner", publish=["logs:etl:>"])
    assert evaluate([exact], {"sub": "system:serviceaccount:etl:runner2"}) == []


def test_a_keys_file_issuer_with_the_logs_claim_and_sighup(tmp_path: Path) -> None:
    """An issuer whose keys are a file beside the issuers file, taking rights from the
    gateway's own `logs` claim shape; SIGHUP (credentials.reload) reads the file again."""
    from dataclasses import replace

    from gateway.app import credentials
    from gateway.app.credentials import generate_keys
    from gateway.core.keys import key_id, load_private_key
    from gateway.core.tokens import Signer
    from tests.conftest import make_config

    old_key, _, _ = generate_keys(tmp_path / "keys")
    (tmp_path / "issuers.toml").write_text(
        '[[issuers]]\nissuer = "https://partner.example"\naudiences = ["logs"]\n'
        'keys_file = "keys/jwks.json"\n[[issuers.rights]]\nclaim = "logs"\n'
    )
    trust = credentials.trust(replace(make_config(), issuers=str(tmp_path / "issuers.toml")))

    def signer(path: Path) -> Signer:
        key = load_private_key(path)
        kid = key_id(key.public_key())
        return Signer(private_key=key, kid=kid, issuer="https://partner.example", audience="logs")

    token = signer(old_key).mint("partner", publish=["logs:partner:>"])
    assert [p.text for p in trust.verifier.verify(token).publish] == ["logs:partner:>"]
    (tmp_path / "keys" / "jwks.json").unlink()
    new_key, _, _ = generate_keys(tmp_path / "keys")  # a file with the new key only
    credentials.reload(trust, make_config())
    with pytest.raises(GatewayError) as e:
        trust.verifier.verify(token)  # was cached: the reload forgot it
    assert e.value.reason == "unknown_kid"
    assert trust.verifier.verify(signer(new_key).mint("partner", admin=True)).admin


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"issuer": "https://evil.example/realms/acme"}, "bad_document"),  # OIDC: must match
        ({"jwks_uri": "http://203.0.113.7/certs"}, "refused_url"),  # plain http off loopback
        ({"jwks_uri": None}, "refused_url"),
    ],
)
async def test_a_discovery_document_is_checked_before_its_keys_are_fetched(
    tmp_path: Path, tenants: dict[str, Tenant], changes: dict[str, Any], kind: str
) -> None:
    async with idp_gateway(tmp_path, tenants) as (provider, run):
        tenant = provider.tenants["keycloak"]
        await accepted(run, sign(tenant.keys[0], keycloak_claims(tenant, [])))
        provider.discovery_changes = changes
        verifier = gateway_of(run).verifier
        # A token with a new kid asks for a fetch (after the first, once per interval).
        token = sign(SigningKey("new", tenant.keys[0].private), keycloak_claims(tenant, []))
        deadline = time.monotonic() + 10
        while verifier.status()[tenant.issuer].fetches.get(kind, 0) == 0:
            assert time.monotonic() < deadline, verifier.status()[tenant.issuer]
            with contextlib.suppress(GatewayError):
                verifier.verify(token)
            await asyncio.sleep(0.05)
        assert verifier.status()[tenant.issuer].usable  # the keys fetched before stay
