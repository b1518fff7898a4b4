"""GET /metrics: the Prometheus exposition of one gateway's registry."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder


class MetricsHandler:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def handle(self, request: web.Request) -> web.Response:
        """Text format 0.0.4 by default, OpenMetrics when the scraper's Accept asks for it.

        No token: scrape it from inside the network; the load balancer does not route it.
        """
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self._registry), headers={"Content-Type": content_type})
