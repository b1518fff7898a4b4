"""GET /metrics: the Prometheus exposition of one gateway's registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

# Several workers: what to expose instead of this one's registry (all of theirs, merged).
Merge = Callable[[CollectorRegistry], Awaitable[Collector]]


class MetricsHandler:
    def __init__(self, registry: CollectorRegistry, merge: Merge | None = None) -> None:
        self._registry = registry
        self._merge = merge

    async def handle(self, request: web.Request) -> web.Response:
        """Text format 0.0.4 by default, OpenMetrics when the scraper's Accept asks for it.

        No token: scrape it from inside the network; the load balancer does not route it.
        """
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        source = self._registry if self._merge is None else await self._merge(self._registry)
        return web.Response(body=encode(source), headers={"Content-Type": content_type})
