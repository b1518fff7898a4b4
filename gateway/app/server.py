"""The lifecycle owner: builds the pieces, serves gRPC and HTTP on one loop, drains on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc
from prometheus_client import CollectorRegistry

from gateway.api.grpc import reflection
from gateway.api.grpc.access import CallLog
from gateway.api.grpc.auth import Authenticator
from gateway.api.grpc.log_ingest import LogIngestServicer
from gateway.api.grpc.log_stream import LogStreamServicer
from gateway.api.http.bodies import BodyReader
from gateway.api.http.cors import Cors, parse_origins
from gateway.api.http.facts import FactsHandler
from gateway.api.http.front import Front
from gateway.api.http.front_limits import FrontLimits
from gateway.api.http.history import HistoryHandler
from gateway.api.http.listing import ChannelsHandler
from gateway.api.http.metrics import MetricsHandler
from gateway.api.http.ops import OpsHandlers
from gateway.api.http.publish import PublishHandler
from gateway.api.http.serve import Serving, post
from gateway.api.http.stream import StreamHandler, StreamSettings
from gateway.api.otlp.export import SERVICE as OTLP_SERVICE
from gateway.api.otlp.export import OtlpExport
from gateway.api.otlp.http_route import PATH as OTLP_PATH
from gateway.api.otlp.http_route import OtlpHttpHandler
from gateway.api.otlp.limits import OtlpLimits
from gateway.api.otlp.logs_service import OtlpLogsServicer
from gateway.api.stopping import Stopping
from gateway.app import credentials, metrics
from gateway.app.brokers import make_broker, make_stream_counts
from gateway.app.browser import browser_routes
from gateway.app.config import Config, ConfigError
from gateway.app.grpc_options import grpc_options
from gateway.app.ports import Ports, cannot_bind, check_free, grpc_host, reason_of
from gateway.app.worker_metrics import Workers
from gateway.core.admission import Admission, publish_limit
from gateway.core.broker import Opening, Resyncing
from gateway.core.catch_up import READ_TURNS
from gateway.core.channel_template import ChannelTemplate
from gateway.core.endings import End
from gateway.core.errors import GatewayError
from gateway.core.hub import Hub
from gateway.core.ingest import Ingest, Limits
from gateway.core.tally import ByteCount
from gateway.core.tokens import MAX_TOKEN_BYTES

log = logging.getLogger("logs_gateway")
PUBLISH = "/api/logs/publish"
SERVICES = ("logs_gateway.v1.LogIngest", "logs_gateway.v1.LogStream", OTLP_SERVICE)


@dataclass(frozen=True)
class HttpSide:
    """The HTTP port's app, its pass, and the routes the front serves itself, by path."""

    app: web.Application
    serving: Serving
    cors: Cors
    fast: dict[str, FactsHandler]


class Gateway:
    """Owns the broker, hub, both servers and their shutdown order."""

    def __init__(self, config: Config, workers: Workers | None = None) -> None:
        self.config = config
        self.workers = workers  # this process's place among --workers, if it is one
        self.trust = credentials.trust(config)
        self.verifier = self.trust.verifier
        self.broker = make_broker(config)
        self.stream_counts = make_stream_counts(config)
        self.hub = Hub(
            epoch=lambda: self.broker.epoch,
            interest=self.broker,
            max_per_owner=config.max_connections_per_token,
            max_streams=config.max_streams,
            shared=self.stream_counts,
        )
        self.publish_streams = Admission(
            publish_limit(config.max_publish_streams, config.max_publish_streams_per_token),
            self.stream_counts,
        )
        self.broker.add_listener(self.hub.deliver)
        if isinstance(self.broker, Resyncing):
            self.broker.on_resync(lambda: self.hub.close_all(End.RESYNC))
        limits = Limits(config.max_entry_bytes, config.max_batch_entries, config.publish_rate)
        self.ingest = Ingest(self.broker, limits)
        self.stopping = Stopping()
        template = config.otlp_channel_template
        self.otlp = OtlpExport(
            self.ingest,
            ChannelTemplate.parse(template) if template else None,
            lambda: self.stopping.is_set,
            OtlpLimits.of(config.max_batch_entries, config.max_entry_bytes),
        )
        self.health = health.aio.HealthServicer()
        self.sse_bytes = ByteCount()
        self.read_turns = asyncio.Semaphore(READ_TURNS)  # history pages read at once
        self.grpc_calls = CallLog()
        self.loop_lag = metrics.LoopLag()
        self.bodies = BodyReader(config.max_message_bytes, config.max_inflation_ratio)
        self.front_limits = FrontLimits(
            config.http_header_timeout,
            config.http_idle_timeout,
            max_connections=config.max_http_connections,
        )
        self.metrics = self._registry()
        self._grpc: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None
        self.front: Front  # the HTTP port's protocol factory, once it listens
        self._own_metrics: web.AppRunner | None = None
        self._background: list[asyncio.Task[None]] = []  # heartbeats, loop lag, issuer keys
        self._stopped = False
        self._serving = False  # set once start() has completed
        self.ports = Ports(0, 0)

    def _registry(self) -> CollectorRegistry:
        return metrics.build_registry(
            metrics.Sources(
                self.hub,
                self.ingest,
                self.broker,
                self.verifier,
                self.sse_bytes,
                self.grpc_calls,
                lambda: self.stopping.is_set,
                self.loop_lag,
                self.publish_streams,
                self.bodies,
                self.otlp.limits,
                self.front_limits,
            )
        )

    # -- start --------------------------------------------------------------------------

    async def start(self) -> Ports:
        if isinstance(self.broker, Opening):
            try:
                await self.broker.open()
            except ValueError as e:
                raise ConfigError(str(e)) from None
        self.ports = Ports(await self._start_http(), await self._start_grpc())
        if self.workers is not None:
            self._own_metrics = await self.workers.serve_own(self.metrics)
        self._background = [
            asyncio.create_task(self.hub.run_heartbeats(self.config.heartbeat_seconds)),
            asyncio.create_task(self.loop_lag.run()),
            asyncio.create_task(self.front.run_timeouts()),
            *(asyncio.create_task(keys.run()) for keys in self.trust.issuers.remote),
        ]
        for name in ("", *SERVICES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._serving = True
        log.info(
            "logs-gateway started",
            extra={
                "http_port": self.ports.http,
                "grpc_port": self.ports.grpc,
                "broker": self.config.broker.split("@")[-1],
                "dev": self.config.dev,
            },
        )
        return self.ports

    async def _start_grpc(self) -> int:
        c = self.config
        server = grpc.aio.server(
            interceptors=[self.grpc_calls, Authenticator(self.verifier)],
            options=grpc_options(c),
        )
        pb_grpc.add_LogIngestServicer_to_server(
            LogIngestServicer(self.ingest, self.stopping, self.publish_streams), server
        )
        pb_grpc.add_LogStreamServicer_to_server(
            LogStreamServicer(
                self.broker,
                self.hub,
                self.stopping,
                queue_limit=10_000,
                write_timeout=2 * c.heartbeat_seconds,
                max_tail=c.history_entries,
                turns=self.read_turns,
                max_channels=c.max_channels,
            ),
            server,
        )
        OtlpLogsServicer(self.otlp).add_to_server(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable(server, (*SERVICES, health.SERVICE_NAME))
        if c.grpc_port and c.workers == 1:
            check_free("gRPC", "grpc_port", c.host, c.grpc_port)
        try:
            port: int = server.add_insecure_port(f"{grpc_host(c.host)}:{c.grpc_port}")
        except RuntimeError:  # grpcio's way of saying the address is taken or invalid
            port = 0
        if port == 0:
            raise OSError(
                cannot_bind("gRPC", "grpc_port", c.host, c.grpc_port, "address in use or invalid")
            )
        await server.start()
        self._grpc = server
        return port

    async def _start_http(self) -> int:
        # The front (http.front) serves publishing; aiohttp's server takes all else.
        side = self.http_side()
        runner = web.AppRunner(
            side.app,
            handler_cancellation=True,
            shutdown_timeout=self.config.grace_seconds,
            access_log=None,
            # aiohttp's 8,190-byte header limit refused tokens near MAX_TOKEN_BYTES with its
            # own 400; every token must reach the verifier, which answers them all alike.
            max_field_size=2 * MAX_TOKEN_BYTES,
        )
        await runner.setup()
        self._runner = runner
        assert runner.server is not None  # set up
        c = self.config
        self.front = Front(side.serving, side.fast, runner.server, side.cors, self.front_limits)
        try:
            return await self.front.listen(c.host, c.http_port, reuse_port=c.workers > 1)
        except OSError as e:
            raise OSError(
                cannot_bind("HTTP", "http_port", c.host, c.http_port, reason_of(e))
            ) from None

    def http_app(self) -> web.Application:
        return self.http_side().app

    def http_side(self) -> HttpSide:
        c = self.config
        app = web.Application(client_max_size=c.max_message_bytes)
        stream = StreamHandler(
            self.broker,
            self.hub,
            StreamSettings(
                c.retry_ms,
                c.max_channels,
                c.send_buffer_bytes,
                2 * c.heartbeat_seconds,
                c.history_entries,
            ),
            self.sse_bytes,
            self.read_turns,
        )
        publish = PublishHandler(self.ingest, self.bodies)
        history = HistoryHandler(self.broker, c.max_channels, self.read_turns)
        ops = OpsHandlers(
            self.broker, self.hub, self.ingest, lambda: self.stopping.is_set, self.verifier, c.dev
        )
        otlp = OtlpHttpHandler(self.otlp, self.bodies)
        merge = self.workers.merged if self.workers is not None else None
        routes = [
            # No HEAD: a stream has no headers-only form, and its bytes would follow them.
            web.get("/api/logs/stream", stream.handle, allow_head=False),
            web.get("/api/logs/channels", ChannelsHandler(self.broker).handle),
            web.get("/api/logs/history", history.handle),
            post(PUBLISH, publish.handle),
            post(OTLP_PATH, otlp.handle),
            web.get("/health", ops.health),
            web.get("/ready", ops.ready),
            web.get("/admin/logs/stats", ops.stats),
            web.get("/metrics", MetricsHandler(self.metrics, merge).handle),
        ]
        if c.dev:
            routes.append(web.route("*", "/test/logs", ops.test_logs))
        routes += browser_routes(c, stream)
        cors = Cors(parse_origins(c.cors_origins))
        serving = Serving(self.verifier, cors)
        serving.add_routes(app, routes)
        return HttpSide(app, serving, cors, {PUBLISH: publish.handle, OTLP_PATH: otlp.handle})

    def reload_keys(self) -> None:
        """Verify with the key file as it is now (SIGHUP); a bad file keeps the old keys."""
        try:
            credentials.reload(self.trust, self.config)
        except ConfigError as e:
            log.error("token keys not reloaded; the previous keys stay", extra={"error": str(e)})
            return
        log.info("token keys reloaded", extra={"algorithms": self.verifier.algorithms})

    # -- stop ---------------------------------------------------------------------------

    async def stop(self) -> None:
        """Drain within the grace period. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if not self._serving:  # start failed (a port taken): nothing to drain or to say
            await asyncio.gather(self._stop_grpc(0), self._stop_http())
            await self._close_broker()
            return
        grace = self.config.grace_seconds
        log.info(
            "draining", extra={"grace_seconds": grace, "sse_connections": self.hub.subscriptions}
        )
        # 1. Probes and load balancers see us leave before anything is refused.
        await self.health.enter_graceful_shutdown()
        # 2. No new RPCs; publish streams finish the batch in hand, are acked, then end
        #    with UNAVAILABLE. Wait for those last acks (bounded by the grace).
        self.stopping.set()
        grpc_stopped = asyncio.create_task(self._stop_grpc(grace))
        if not await self.stopping.streams_ended(grace / 2):
            log.warning(
                "drain: publish streams still open after half the grace; they are cut",
                extra={"publish_streams": self.stopping.open},
            )
        # 3. Every acked entry reaches connected subscribers, then they get a last
        #    `shutdown` event and reconnect elsewhere. head() returns once the listeners
        #    have had every stored event (on Redis: once the feed brought them back).
        with contextlib.suppress(GatewayError):
            await self.broker.head()
        self.hub.flush()
        self.hub.close_all(End.DRAINING)
        # 4. Both servers wait for their handlers, and SSE connections for their last
        #    bytes to be sent, bounded by the grace.
        *_, emptied = await asyncio.gather(grpc_stopped, self._stop_http(), self.hub.emptied(grace))
        if not emptied:
            log.warning(
                "drain: streams still open after the grace; they are cut",
                extra={"streams": self.hub.subscriptions},
            )
        # 5. Background work, then the broker last: nothing is using it any more.
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_broker()
        log.info("stopped")

    async def _close_broker(self) -> None:
        if self.stream_counts is not None:
            await self.stream_counts.close()
        await self.broker.close()

    async def _stop_grpc(self, grace: float) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace)

    async def _stop_http(self) -> None:
        if self._runner is not None:
            grace = self.config.grace_seconds
            await asyncio.gather(self.front.stop(grace), self._runner.cleanup())
        if self._own_metrics is not None:
            await self._own_metrics.cleanup()


async def serve(
    config: Config,
    on_ready: Callable[[Gateway], None] | None = None,
    workers: Workers | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then drain; a second signal stops at once. SIGHUP reads
    the token keys again."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            main.cancel()
        stop.set()

    # Before anything starts, so a signal at any point drains instead of killing.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    gateway = Gateway(config, workers)
    loop.add_signal_handler(signal.SIGHUP, gateway.reload_keys)
    try:
        await gateway.start()
        if on_ready is not None:
            on_ready(gateway)
        await stop.wait()
    finally:
        await gateway.stop()
