"""`--workers N`: one /metrics scrape reports every worker, each sample labelled `worker`.

The kernel hands a scrape to any worker. Each worker also serves its own registry on a Unix
socket in a folder only the supervisor's user can enter; the worker that got the scrape
reads the others' there and adds their samples to its own, so counters stay per worker
(a restarted worker's reset is its own series) and `sum without (worker)` gives the whole
gateway. A worker that does not answer in time is left out and counted in
`logs_gateway_workers_missing`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from gateway.app.metrics import PREFIX

PEER_TIMEOUT = 1.0  # seconds a scrape waits for another worker


@dataclass(frozen=True, slots=True)
class Workers:
    """This worker's place among the supervisor's: its number (1..count) and their folder."""

    folder: Path
    index: int
    count: int

    def socket(self, index: int) -> Path:
        return self.folder / f"worker-{index}.sock"

    async def serve_own(self, registry: CollectorRegistry) -> web.AppRunner:
        """Serve this worker's own registry (OpenMetrics, which keeps every type) on its
        socket, for the other workers' scrapes."""

        encode, content_type = choose_encoder("application/openmetrics-text")

        async def own(_: web.Request) -> web.Response:
            return web.Response(body=encode(registry), headers={"Content-Type": content_type})

        app = web.Application()
        app.router.add_get("/metrics", own)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        path = self.socket(self.index)
        path.unlink(missing_ok=True)  # left by the worker this one replaces
        await web.UnixSite(runner, str(path)).start()
        return runner

    async def merged(self, registry: CollectorRegistry) -> _Merged:
        """Every worker's metrics, each sample labelled with its worker's number."""
        others = [i for i in range(1, self.count + 1) if i != self.index]
        texts = await asyncio.gather(*(self._fetch(i) for i in others))
        families = [(self.index, list(registry.collect()))]
        families += [
            (i, list(text_string_to_metric_families(text)))
            for i, text in zip(others, texts, strict=True)
            if text is not None
        ]
        return _Merged(families, missing=sum(text is None for text in texts))

    async def _fetch(self, index: int) -> str | None:
        connector = aiohttp.UnixConnector(path=str(self.socket(index)))
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.get("http://worker/metrics") as response,
            ):
                if response.status == 200:
                    return await response.text()
        return None  # restarting, or stuck: this scrape goes without it


class _Merged:
    """A collector of families gathered from several workers."""

    def __init__(self, families: list[tuple[int, list[Metric]]], missing: int) -> None:
        self._families = families
        self._missing = missing

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for index, metrics in self._families:
            worker = str(index)
            for metric in metrics:
                into = merged.get(metric.name)
                if into is None:
                    into = merged[metric.name] = Metric(
                        metric.name, metric.documentation, metric.type, metric.unit
                    )
                into.samples += [
                    s._replace(labels={**s.labels, "worker": worker}) for s in metric.samples
                ]
        yield from merged.values()
        yield GaugeMetricFamily(
            PREFIX + "workers_missing",
            "Workers whose metrics this scrape could not read (restarting or stuck).",
            value=self._missing,
        )
