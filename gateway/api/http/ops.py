"""Operations endpoints: /health, /ready, /admin/logs/stats and the dev-only /test/logs."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

from aiohttp import web

from gateway.api.http.auth import TokenPolicy, requires_token
from gateway.core.broker import Broker
from gateway.core.channels import parse_channel
from gateway.core.errors import invalid
from gateway.core.events import Entry, Event, level_severity
from gateway.core.hub import Hub
from gateway.core.ingest import Ingest
from gateway.core.tokens import Principal, Verifier

DEFAULT_TEST_CHANNEL = "logs:etl:workspace123:workflow456"
_TEST_MESSAGES = (
    ("info", "test entry: extract started"),
    ("debug", "test entry: read 1,024 rows from source"),
    ("warn", "test entry: slow query took 2.4 s"),
    ("error", "test entry: load step failed, will retry"),
)


class OpsHandlers:
    def __init__(
        self,
        broker: Broker,
        hub: Hub,
        ingest: Ingest,
        draining: Callable[[], bool],
        verifier: Verifier,
        dev: bool = False,
    ) -> None:
        self._broker = broker
        self._hub = hub
        self._ingest = ingest
        self._draining = draining
        self._verifier = verifier
        self._started = time.time()
        # Dev mode says which process answers, so the demo can tell its own gateway from
        # one already holding the port (and the Logs page that it may show sample rows).
        self._health: dict[str, object] = {"status": "ok"}
        if dev:
            self._health |= {"mode": "dev", "pid": os.getpid()}

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(self._health)

    async def ready(self, request: web.Request) -> web.Response:
        """Ready while the broker answers, not draining, and some issuer's tokens can be
        checked. An issuer whose keys are stale is named but does not make the gateway
        unready on its own: the others' tokens are still served (docs/SECURITY.md)."""
        broker_ok = await self._broker.ready()
        issuers = {name: st.detail for name, st in self._verifier.status().items()}
        tokens_ok = "ok" in issuers.values()
        ok = broker_ok and tokens_ok and not self._draining()
        body = {
            "ready": ok,
            "broker": "ok" if broker_ok else "unavailable",
            "draining": self._draining(),
            "issuers": issuers,
        }
        return web.json_response(body, status=200 if ok else 503)

    @requires_token(TokenPolicy(admin=True))
    async def stats(self, request: web.Request) -> web.Response:
        hub = self._hub.stats()
        return web.json_response(
            {
                "uptime_seconds": round(time.time() - self._started, 1),
                "epoch": self._broker.epoch,
                "channels": self._broker.usage().channels,
                "connections": hub["connections"],
                "subscribers_per_channel": hub["subscribers_per_channel"],
                # The counts /metrics reports (entries_received_total), from the same place.
                "entries_stored": self._ingest.counts.total("stored"),
                "entries_refused": self._ingest.counts.total(),
                "entries_per_second": round(self._ingest.counts.stored_rate.rate(), 1),
                "deliveries": hub["deliveries"],
            }
        )

    async def test_logs(self, request: web.Request) -> web.Response:
        """Dev mode: publish `count` sample entries to `channel` (default the ETL seed)."""
        channel = parse_channel(request.query.get("channel", DEFAULT_TEST_CHANNEL))
        try:
            count = int(request.query.get("count", "1"))
        except ValueError:
            raise invalid("'count' must be a whole number") from None
        if not 1 <= count <= 1000:
            raise invalid("'count' must be between 1 and 1000")
        entries = [_sample(channel, i) for i in range(count)]
        dev = Principal("dev-test", (), (), True, time.time() + 60, "")
        batch = await self._ingest.publish(dev, entries)
        return web.json_response(
            {
                "channel": channel,
                "offsets": [o.offset for o in batch.outcomes if isinstance(o, Event)],
            }
        )


def _sample(channel: str, i: int) -> Entry:
    level, message = random.choice(_TEST_MESSAGES)  # noqa: S311 (sample data)
    return Entry(channel, time.time_ns(), level_severity(level), message, "test", {"n": i})
