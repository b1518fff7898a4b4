"""The `logs-gateway` command: serve, proxy, token, keys, config."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from gateway.app import config as cfg
from gateway.app import credentials, logs, proxy_server, rights_cli, workers
from gateway.app.cli_clients import (
    CLIENT_VERBS,
    PATTERNS_HELP,
    add_client_verbs,
    run_client_verb,
)
from gateway.app.config import AUTH_SETTINGS, Config, ConfigError
from gateway.app.server import Gateway, serve
from gateway.app.worker_metrics import Workers
from gateway.core.errors import GatewayError

DEV_SUBJECTS = {
    "service": ("dev-service", {"publish": ["logs:>"]}),
    "user": ("dev-user", {"subscribe": ["logs:>"]}),
    "admin": ("dev-admin", {"admin": True}),
}


class _Parser(argparse.ArgumentParser):
    """Bad flags get one line naming the problem (and where to look), then exit 2;
    subcommand parsers are made of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """A flag no parser knows is refused by the innermost verb's parser, so the message
        points at that verb's --help (`logs-gateway serve --help`), not the program's."""
        parsed, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed, extra


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="logs-gateway", description="Real-time log gateway.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    serve_p = verbs.add_parser("serve", help="run the gateway (gRPC + HTTP)")
    cfg.add_arguments(serve_p)
    # Set by the --workers supervisor on the processes it starts (see gateway/app/workers.py).
    serve_p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    serve_p.add_argument("--supervisor", type=int, default=0, help=argparse.SUPPRESS)
    serve_p.add_argument("--worker-folder", default="", help=argparse.SUPPRESS)

    config_p = verbs.add_parser("config", help="print the effective configuration, secrets masked")
    cfg.add_arguments(config_p)

    proxy_server.add_parser(verbs)
    rights_cli.add_parser(verbs)

    token_p = verbs.add_parser("token", help="print a signed JWT")
    kinds = token_p.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, rights_flag in (("service", "--publish"), ("user", "--subscribe"), ("admin", None)):
        k = kinds.add_parser(kind, help=f"a {kind} token")
        k.add_argument("name", help="the token's subject (`sub`)")
        if rights_flag:
            k.add_argument(
                rights_flag, nargs="+", required=True, metavar="PATTERN", help=PATTERNS_HELP
            )
        k.add_argument(
            "--ttl", type=float, default=3600.0, help="lifetime in seconds (default 3600)"
        )
        cfg.add_arguments(k, AUTH_SETTINGS)

    keys_p = verbs.add_parser("keys", help="manage signing keys")
    keys_verbs = keys_p.add_subparsers(dest="keys_verb", required=True, metavar="ACTION")
    gen = keys_verbs.add_parser("generate", help="write a new Ed25519 key pair")
    gen.add_argument(
        "--dir", type=Path, default=Path("keys"), help="output folder (default ./keys)"
    )
    add_client_verbs(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ConfigError, GatewayError) as e:
        message = e.message if isinstance(e, GatewayError) else str(e)
        print(f"logs-gateway: {message}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. a port already in use
        print(f"logs-gateway: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second signal: stop at once
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.verb in CLIENT_VERBS:
        return run_client_verb(args)
    if args.verb == "serve":
        return _serve(cfg.load(args), args.worker, args.supervisor, args.worker_folder)
    if args.verb == "config":
        for name, value in cfg.load(args).masked().items():
            print(f"{name} = {value!r}")
        return 0
    if args.verb == "token":
        return _token(args)
    if args.verb == "proxy":
        return proxy_server.run(args)
    if args.verb == "rights":
        return rights_cli.run(args)
    private_path, jwks_path, kid = credentials.generate_keys(args.dir)
    print(f"private key: {private_path} (keep secret; LOGS_GATEWAY_JWT_PRIVATE_KEY)")
    print(f"public keys: {jwks_path} (LOGS_GATEWAY_JWT_PUBLIC_KEYS)")
    print(f"kid: {kid}")
    return 0


def _token(args: argparse.Namespace) -> int:
    signer = credentials.signer(cfg.load(args))
    if args.ttl <= 0:
        raise ConfigError(f"--ttl={args.ttl}: must be greater than 0")
    print(
        signer.mint(
            args.name,
            publish=getattr(args, "publish", None) or (),
            subscribe=getattr(args, "subscribe", None) or (),
            admin=args.kind == "admin",
            ttl=args.ttl,
        )
    )
    return 0


def _serve(config: Config, worker: int = 0, supervisor: int = 0, folder: str = "") -> int:
    logs.setup(config.log_level, config.log_format)
    if config.dev:
        config = credentials.with_dev_secret(config)
    elif not config.has_verify_key:
        raise ConfigError(credentials.MISSING_KEY)
    if config.workers > 1 and not worker:
        return workers.supervise(config)
    banner = _print_dev_banner if config.dev and worker <= 1 else None
    on_ready = workers.follow_supervisor(supervisor, banner) if worker else banner
    place = Workers(Path(folder), worker, config.workers) if worker and folder else None
    run_loop(config.event_loop, serve(config, on_ready, place))
    return 0


def run_loop(kind: str, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on the configured event loop (the setting checked uvloop is installed)."""
    if kind == "uvloop":
        import uvloop  # optional dependency, imported only when chosen

        uvloop.run(main)
    else:
        asyncio.run(main)


def _print_dev_banner(gateway: Gateway) -> None:
    """Dev mode: ready-to-use tokens and commands, on stdout (never in the logs)."""
    config = gateway.config
    signer = credentials.signer(config)
    tokens = {
        kind: signer.mint(sub, ttl=24 * 3600, **rights)  # type: ignore[arg-type]
        for kind, (sub, rights) in DEV_SUBJECTS.items()
    }
    url = f"http://{config.host}:{gateway.ports.http}"
    print(
        f"""
logs-gateway (dev mode) — HTTP {url}  gRPC {config.host}:{gateway.ports.grpc}

  service token (publish logs:>):   {tokens["service"]}
  user token    (subscribe logs:>): {tokens["user"]}
  admin token:                      {tokens["admin"]}

  watch:    curl -N -H "Authorization: Bearer {tokens["user"]}" \\
              '{url}/api/logs/stream?channels=logs:>'
  publish:  curl -X POST '{url}/test/logs?count=3'
  browser:  {url}/dev/login?user=dev&workspace=workspace123  (then Connect Live Logs)
""",
        flush=True,
    )
