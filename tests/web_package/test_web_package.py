"""The browser client as frontend teams get it: the npm package, packed and installed.

Node's test runner and Vitest (React 18 and 19 under jsdom) run the package against a real
`logs-gateway serve`; tsc compiles a strict TypeScript consumer. The app in Chromium is in
tests/browser/test_react.py.
"""

from __future__ import annotations

import json
import re
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Running, gateway_process
from tests.web_package.consumer import (
    APP,
    PACKAGE,
    declared_tests,
    gateway_env,
    installed,
    run,
    tool,
)

ROOT = PACKAGE.parent.parent
MANIFEST = json.loads((PACKAGE / "package.json").read_text())
# The gap test counts on this history per channel (tests/web_package/node/client.test.js).
HISTORY_ENTRIES = "5"


@pytest.fixture(scope="module")
def tarball() -> Path:
    return installed()


@pytest.fixture(scope="module")
def gateway(tarball: Path) -> Iterator[Running]:
    with gateway_process("--history-entries", HISTORY_ENTRIES) as run_:
        yield run_


def test_version_is_the_python_package_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert MANIFEST["version"] == project["version"]


def test_manifest_is_an_esm_package_without_runtime_dependencies() -> None:
    assert MANIFEST["type"] == "module"
    assert MANIFEST["sideEffects"] is False
    assert "dependencies" not in MANIFEST
    assert MANIFEST["exports"]["."] == {
        "types": "./logs-client.d.ts",
        "default": "./logs-client.js",
    }
    assert MANIFEST["exports"]["./react"] == {
        "types": "./logs-react.d.ts",
        "default": "./logs-react.js",
    }
    # React only for the bindings: a peer, and optional, so the client alone installs bare.
    assert MANIFEST["peerDependenciesMeta"]["react"] == {"optional": True}


def test_tarball_holds_the_modules_types_and_readme(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = sorted(n.removeprefix("package/") for n in tar.getnames())
    assert names == [
        "README.md",
        "logs-client.d.ts",
        "logs-client.js",
        "logs-react.d.ts",
        "logs-react.js",
        "package.json",
    ]
    installed_at = APP / "node_modules" / "logs-gateway-client"
    for name in ("logs-client.js", "logs-react.js"):  # the very files the gateway serves
        assert (installed_at / name).read_bytes() == (PACKAGE / name).read_bytes()


def test_typescript_consumer_compiles_strict(tarball: Path) -> None:
    run([tool("tsc"), "--noEmit", "--strict", "-p", "types/tsconfig.json"])


def test_node_client_against_the_gateway(gateway: Running) -> None:
    files = sorted((APP / "node").glob("*.test.js"))
    output = run(["node", "--test", *map(str, files)], env=gateway_env(gateway.http))
    assert re.search(r"^# fail 0$", output, re.MULTILINE), output
    assert re.search(rf"^# pass {declared_tests(*files)}$", output, re.MULTILINE), output


@pytest.mark.parametrize("react", ["18", "19"])
def test_react_bindings_under_jsdom(gateway: Running, react: str) -> None:
    env = gateway_env(gateway.http) | {"LOGS_REACT": react}
    output = run([tool("vitest"), "run"], env=env)
    count = declared_tests(APP / "react" / "hooks.test.js")
    assert re.search(rf"Tests\s+{count} passed \({count}\)", output), output


def test_gateway_serves_the_same_modules(gateway: Running) -> None:
    """Pages without a build step load the package's own files from /static/lib/."""
    for name in ("logs-client.js", "logs-react.js"):
        response = httpx.get(f"{gateway.http}/static/lib/{name}")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert response.content == (PACKAGE / name).read_bytes()
