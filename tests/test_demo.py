"""scripts/demo: it refuses a taken port, and what it prints works from another terminal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from gateway.app import config as cfg
from tests.conftest import free_port, gateway_process

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "scripts" / "demo"
BANNER_END = "Ctrl-C stops the gateway and the simulators."


def demo_env(http_port: int, grpc_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(cfg.ENV_PREFIX)}
    ports = {"LOGS_GATEWAY_HTTP_PORT": str(http_port), "LOGS_GATEWAY_GRPC_PORT": str(grpc_port)}
    return env | ports


def test_a_taken_port_is_named_and_nothing_starts() -> None:
    # The case of the issue: a gateway (an earlier demo) already holds the HTTP port.
    with gateway_process("--dev") as gw:
        taken = int(gw.http.rsplit(":", 1)[1])
        result = subprocess.run(
            [DEMO], env=demo_env(taken, free_port()), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 1
        assert f"demo: port {taken} on 127.0.0.1 is taken" in result.stderr
        assert "LOGS_GATEWAY_HTTP_PORT=" in result.stderr  # how to choose another
        assert "publish" not in result.stdout  # no banner, no simulators
        assert httpx.get(f"{gw.http}/health").status_code == 200  # the holder is unharmed


def lines_until(stream: Iterator[str], last: str) -> list[str]:
    seen = []
    for line in stream:
        seen.append(line.rstrip("\n"))
        if last in line:
            return seen
    raise AssertionError(f"the demo ended before printing {last!r}: {seen}")


def sourced(env_file: Path) -> dict[str, str]:
    """What `. env_file` exports, as the README tells another terminal to run it."""
    pairs = re.findall(r"^export (\w+)=(.*)$", env_file.read_text(), re.MULTILINE)
    return dict(pairs)


def test_the_printed_commands_reach_the_demo_gateway() -> None:
    http_port = free_port()
    demo = subprocess.Popen(
        [DEMO],
        env=demo_env(http_port, free_port()),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # Ctrl-C below reaches the demo and all it started
    )
    assert demo.stdout is not None
    env_file = ROOT / ".venv" / f"demo-{http_port}.env"
    try:
        banner = "\n".join(lines_until(demo.stdout, BANNER_END))
        pid = re.search(r"publish to the gateway at \S+ \(pid (\d+)\)", banner)
        assert pid is not None, banner
        url = f"http://127.0.0.1:{http_port}"
        assert httpx.get(f"{url}/health").json()["pid"] == int(pid[1])  # its own gateway
        assert f". .venv/demo-{http_port}.env" in banner
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        exported = sourced(env_file)
        assert exported["LOGS_GATEWAY_URL"] == url

        # "more tokens": minted in another shell with the file's key, accepted by the gateway.
        shell = {k: v for k, v in os.environ.items() if not k.startswith(cfg.ENV_PREFIX)}
        minted = subprocess.run(
            [ROOT / ".venv/bin/logs-gateway", "token", "user", "carol", "--subscribe", "logs:>"],
            env=shell | exported,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for token in (minted, exported["USER_TOKEN"]):
            headers = {"Authorization": f"Bearer {token}"}
            stream_url = f"{url}/api/logs/stream?channels=logs:>"
            with httpx.stream("GET", stream_url, headers=headers, timeout=10) as response:
                assert response.status_code == 200
                # The simulators publish each second: a live entry arrives.
                assert any(line == "event: log" for line in response.iter_lines())
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=30)
        rest = demo.stdout.read()  # all it printed after the banner, to its end
        demo.stdout.close()
    assert not env_file.exists()  # removed with the run it describes
    # One banner, the demo's (not also the gateway's dev one), and no token on the
    # terminal: they are in the env file only.
    printed = f"{banner}\n{rest}"
    assert printed.count("== logs-gateway demo") == 1, printed
    assert "logs-gateway (dev mode)" not in printed
    assert "eyJ" not in printed  # every JWT starts so (base64 of '{"')
