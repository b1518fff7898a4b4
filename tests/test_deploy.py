"""The container files, read structurally (no Docker engine runs here; scripts/test also runs
hadolint on the Dockerfile): image shape, compose topology, nginx settings that keep SSE and
gRPC streams healthy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import crossplane
import pytest
import yaml

from gateway.app import cli
from gateway.app import config as cfg
from tests.conftest import Running, free_port
from tests.nats_cluster import nats_server_binary

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = {s.name: s.default for s in cfg.SETTINGS}


# -- Dockerfile -------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = (line.strip() for line in text.splitlines())
    out = []
    for line in lines:
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_dockerfile_is_multi_stage_on_a_slim_base() -> None:
    bases = [args for word, args in instructions() if word == "FROM"]
    assert len(bases) >= 2
    assert all("slim" in base for base in bases)
    assert any(args.startswith("--from=") for word, args in final_stage() if word == "COPY")


def test_image_runs_as_non_root_and_binds_all_interfaces() -> None:
    stage = final_stage()
    users = [args for word, args in stage if word == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    env = " ".join(args for word, args in stage if word == "ENV")
    assert "LOGS_GATEWAY_HOST=0.0.0.0" in env
    assert ("EXPOSE", "3002 50051") in stage
    assert ("ENTRYPOINT", '["logs-gateway"]') in stage


def test_image_bakes_in_no_secret() -> None:
    for word, args in instructions():
        if word in ("ENV", "ARG"):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|PRIVATE", args, re.IGNORECASE), args
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert ignored[0] == "*"  # an allow-list: nothing reaches the build unless named
    assert "**/*.pem" in ignored
    assert "**/.env" in ignored
    assert not any(line.startswith(("!keys", "!.git", "!.env")) for line in ignored)


def build_sources() -> list[str]:
    """What the build stage copies from the context (COPY without --from)."""
    steps = instructions()
    first_from = [i for i, (word, _) in enumerate(steps) if word == "FROM"][1]
    copies = [args.split() for word, args in steps[:first_from] if word == "COPY"]
    return [src for args in copies if not args[0].startswith("--") for src in args[:-1]]


def test_build_context_holds_all_the_package_needs() -> None:
    sources = build_sources()
    allowed = (ROOT / ".dockerignore").read_text().splitlines()
    for source in sources:
        path = ROOT / source
        assert path.exists(), source
        assert f"!{source}/" in allowed if path.is_dir() else f"!{source}" in allowed
    # A symlink (gateway/web/lib) must point at something the build also copies.
    roots = [(ROOT / s).resolve() for s in sources]
    for source in sources:
        for link in (p for p in (ROOT / source).rglob("*") if p.is_symlink()):
            assert any(link.resolve().is_relative_to(r) for r in roots), link


def healthcheck_command() -> list[str]:
    (args,) = [args for word, args in final_stage() if word == "HEALTHCHECK"]
    command: list[str] = json.loads(args.split(" CMD ", 1)[1])
    return command


def test_healthcheck_passes_on_a_live_gateway_and_fails_without_one(
    gw_process: Running,
) -> None:
    command = healthcheck_command()
    assert command[0] == "python"
    assert "/health" in command[-1]
    env = dict(os.environ)
    for port, expected in ((gw_process.http.rsplit(":", 1)[1], 0), (str(free_port()), 1)):
        env["LOGS_GATEWAY_HTTP_PORT"] = port
        result = subprocess.run(
            [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False
        )
        assert result.returncode == expected


# -- docker-compose.yml -----------------------------------------------------------------


# The Redis topology and the NATS one beside it: the same gateways, balancer and simulators.
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.nats.yml")


def compose(name: str) -> dict[str, Any]:
    """The services of one compose file."""
    services: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())["services"]
    return services


@pytest.fixture(scope="module", params=COMPOSE_FILES)
def services(request: pytest.FixtureRequest) -> dict[str, Any]:
    return compose(request.param)


def with_verb(services: dict[str, Any], verb: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if s.get("command", [""])[0] == verb}


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", text)
    assert match, text
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_compose_runs_two_gateways_sharing_redis() -> None:
    services = compose("docker-compose.yml")
    gateways = with_verb(services, "serve")
    assert len(gateways) == 2
    for gateway in gateways.values():
        assert gateway["command"] == ["serve", "--broker", "redis://redis:6379/0"]
        assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
        assert seconds(gateway["stop_grace_period"]) > DEFAULTS["grace_seconds"]
        assert gateway["build"] == "."
    assert services["redis"]["image"].startswith("redis:")
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_compose_nats_runs_two_gateways_on_a_three_node_jetstream_cluster() -> None:
    services = compose("docker-compose.nats.yml")
    nodes = sorted(n for n, s in services.items() if s.get("image", "").startswith("nats:"))
    assert nodes == ["nats1", "nats2", "nats3"]
    gateways = with_verb(services, "serve")
    assert len(gateways) == 2
    for gateway in gateways.values():
        command = gateway["command"]
        broker = command[command.index("--broker") + 1]
        assert broker == "nats://" + ",".join(f"{n}:4222" for n in nodes)
        assert command[command.index("--nats-replicas") + 1] == "3"
        assert gateway["depends_on"] == {n: {"condition": "service_healthy"} for n in nodes}
        assert seconds(gateway["stop_grace_period"]) > DEFAULTS["grace_seconds"]
    stores = set()
    for name in nodes:
        node = services[name]
        assert node["environment"] == {"NATS_NAME": name}
        assert node["command"] == ["--config", "/etc/nats/nats.conf"]
        assert "./deploy/nats.conf:/etc/nats/nats.conf:ro" in node["volumes"]
        stores |= {v for v in node["volumes"] if v.endswith(":/data")}
        assert "/healthz" in " ".join(node["healthcheck"]["test"])
    assert stores == {f"{n}:/data" for n in nodes}  # a store of its own on each node


def test_nats_config_is_valid_on_each_node_and_routes_to_all() -> None:
    """The upstream nats-server checks deploy/nats.conf as each node reads it."""
    text = (ROOT / "deploy" / "nats.conf").read_text()
    nodes = sorted(n for n in compose("docker-compose.nats.yml") if n.startswith("nats"))
    assert sorted(re.findall(r"nats-route://(\w+):6222", text)) == nodes
    assert re.search(r"store_dir: /data\n", text)
    for name in nodes:
        checked = subprocess.run(
            [nats_server_binary(), "-t", "-c", str(ROOT / "deploy" / "nats.conf")],
            env={"NATS_NAME": name},
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr


def test_compose_runs_the_three_simulators_through_the_balancer(services: dict[str, Any]) -> None:
    simulators = with_verb(services, "simulate")
    assert sorted(s["command"][1] for s in simulators.values()) == ["analytics", "etl", "faas"]
    for simulator in simulators.values():
        assert simulator["environment"]["LOGS_GATEWAY_GRPC_TARGET"] == "lb:50051"
        assert simulator["depends_on"] == {"lb": {"condition": "service_started"}}


def test_compose_commands_are_valid_cli_commands(services: dict[str, Any]) -> None:
    parser = cli.build_parser()
    ours = {n: s for n, s in services.items() if s.get("image") == "logs-gateway:local"}
    assert len(ours) == 5
    for service in ours.values():
        args = parser.parse_args(service["command"])  # exits on an unknown verb or flag
        if args.verb == "serve":
            cfg.load(args, env={})  # and every value is one the gateway accepts


def test_compose_balancer_publishes_both_ports_with_our_config(services: dict[str, Any]) -> None:
    lb = services["lb"]
    assert lb["image"].startswith("nginx:")
    assert sorted(lb["ports"]) == ["3002:3002", "50051:50051"]
    (mount,) = lb["volumes"]
    source, target, mode = mount.split(":")
    assert (ROOT / source).is_file()
    assert (target, mode) == ("/etc/nginx/nginx.conf", "ro")
    for gateway in with_verb(services, "serve"):
        assert lb["depends_on"][gateway] == {"condition": "service_healthy"}


def test_compose_holds_no_secret_value(services: dict[str, Any]) -> None:
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"SECRET|TOKEN|PASSWORD", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), key


def header_comment(path: Path) -> str:
    """The comment lines a compose file opens with, where a reader looks first."""
    lines = path.read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# "))
    return " ".join(header)


def test_compose_files_with_a_project_name_say_they_need_compose_v2() -> None:
    # A top-level `name:` makes the 1.x `docker-compose` refuse the file with no hint of the
    # version it needs, so the header must say so (issue 25).
    files = sorted(ROOT.glob("*compose*.y*ml"))
    named = [f for f in files if "name" in (yaml.safe_load(f.read_text()) or {})]
    assert {f.name for f in named} >= set(COMPOSE_FILES)
    for path in named:
        header = header_comment(path)
        assert "Compose v2" in header, path.name
        assert "`docker compose`" in header, path.name


# -- deploy/nginx.conf ------------------------------------------------------------------

Block = list[dict[str, Any]]


@pytest.fixture(scope="module")
def nginx() -> Block:
    parsed = crossplane.parse(str(ROOT / "deploy" / "nginx.conf"))
    assert parsed["status"] == "ok", parsed["errors"]
    (http,) = find(parsed["config"][0]["parsed"], "http")
    block: Block = http["block"]
    return block


def find(block: Block, name: str) -> Block:
    return [d for d in block if d["directive"] == name]


def arg(block: Block, name: str) -> list[str]:
    (directive,) = find(block, name)
    args: list[str] = directive["args"]
    return args


def server(http: Block, port: str) -> Block:
    (found,) = [s["block"] for s in find(http, "server") if arg(s["block"], "listen")[0] == port]
    block: Block = found
    return block


def nginx_seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m|h)?", text)
    assert match, text
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[match[2]]


def test_nginx_keeps_sse_streams_flowing(nginx: Block) -> None:
    assert arg(nginx, "gzip") == ["off"]
    (location,) = [
        loc["block"] for loc in find(server(nginx, "3002"), "location") if loc["args"] == ["/"]
    ]
    assert arg(location, "proxy_pass") == ["http://gateway_http"]
    assert arg(location, "proxy_http_version") == ["1.1"]
    headers = {tuple(d["args"]) for d in find(location, "proxy_set_header")}
    assert ("Connection", "") in headers
    assert ("X-Request-Id", "$request_id") in headers
    assert arg(location, "proxy_buffering") == ["off"]
    assert arg(location, "proxy_cache") == ["off"]
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        assert nginx_seconds(arg(location, timeout)[0]) > 2 * DEFAULTS["heartbeat_seconds"]


def test_nginx_balances_grpc_over_http2(nginx: Block) -> None:
    grpc_server = server(nginx, "50051")
    # The form nginx 1.22 (Debian 12) and >= 1.25.1 both accept; `http2 on;` is 1.25.1+ only.
    assert arg(grpc_server, "listen") == ["50051", "http2"]
    (location,) = find(grpc_server, "location")
    assert arg(location["block"], "grpc_pass") == ["grpc://gateway_grpc"]
    assert nginx_seconds(arg(location["block"], "grpc_read_timeout")[0]) >= 3600


def test_nginx_upstreams_are_the_compose_gateways(nginx: Block, services: dict[str, Any]) -> None:
    gateways = sorted(with_verb(services, "serve"))
    for name, port in (("gateway_http", "3002"), ("gateway_grpc", "50051")):
        (upstream,) = [u for u in find(nginx, "upstream") if u["args"] == [name]]
        hosts = sorted(s["args"][0] for s in find(upstream["block"], "server"))
        assert hosts == [f"{g}:{port}" for g in gateways]


def test_nginx_never_logs_query_strings_or_routes_metrics(nginx: Block) -> None:
    log_format = " ".join(arg(nginx, "log_format")[1:])
    assert "$uri" in log_format
    assert not re.search(r"\$request\b|\$request_uri|\$args|\$query_string", log_format)
    metrics = [
        loc["block"] for loc in find(server(nginx, "3002"), "location") if "/metrics" in loc["args"]
    ]
    assert metrics
    assert arg(metrics[0], "return") == ["404"]


def test_nginx_limits_each_client_address(nginx: Block) -> None:
    """The gateways see only the balancer's address, so per-client limits live here."""
    zones = {
        d["args"][1].split(":")[0].removeprefix("zone=") for d in find(nginx, "limit_conn_zone")
    }
    assert zones == {"per_address"}
    assert arg(nginx, "limit_conn_status") == ["429"]
    assert arg(nginx, "limit_req_status") == ["429"]
    assert nginx_seconds(arg(nginx, "client_header_timeout")[0]) <= 30
    http_server = server(nginx, "3002")
    assert arg(http_server, "limit_conn")[0] == "per_address"
    assert arg(http_server, "limit_req")[0] == "zone=requests"
    assert arg(server(nginx, "50051"), "limit_conn")[0] == "per_address"
