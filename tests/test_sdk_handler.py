"""LogsHandler: a standard logging.Handler that never blocks its caller."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from logs_gateway import LogsHandler, Options
from logs_gateway.handler import record_severity

from gateway.core.tokens import Signer
from tests.conftest import free_port, gateway_process, running_gateway
from tests.sse_client import open_stream

CH = "logs:etl:workspace123:workflow456"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.sdk_handler")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def test_a_burst_of_100k_records_never_blocks_and_all_arrive(
    logger: logging.Logger, signer: Signer
) -> None:
    """The burst runs while no gateway is listening, so any call that waited on the
    network would hang; then a gateway starts on that port and receives every record."""
    port = free_port()
    handler = LogsHandler(CH, signer.mint("svc", publish=[CH]), f"127.0.0.1:{port}")
    logger.addHandler(handler)
    started = time.monotonic()
    for i in range(100_000):
        logger.info("record %d", i)
    burst = time.monotonic() - started
    print(f"burst of 100k records: {burst:.2f} s")
    assert handler.publisher.stats.acked == 0
    with gateway_process("--grpc-port", str(port)) as gw:
        handler.publisher.flush(timeout=120)
        stats = httpx.get(
            f"{gw.http}/admin/logs/stats", headers=gw.headers(gw.token(admin=True)), timeout=10
        ).json()
    assert handler.publisher.stats.acked == 100_000
    assert (handler.dropped, handler.failed) == (0, 0)
    assert stats["entries_stored"] == 100_000
    # Never blocking is shown by the burst ending at all (nobody listened to it): this
    # bound only keeps a slow path from hiding; 30 s was passed under a load of 10-16.
    assert burst < 90, f"the burst took {burst:.1f} s"


def test_a_full_buffer_drops_and_counts(logger: logging.Logger, signer: Signer) -> None:
    options = Options(max_buffer=1000, when_full="drop", close_timeout=0.2)
    handler = LogsHandler(CH, signer.mint("svc"), f"127.0.0.1:{free_port()}", options=options)
    logger.addHandler(handler)
    for i in range(5000):
        logger.warning("record %d", i)
    assert handler.dropped == 4000
    assert handler.publisher.stats.accepted == 1000


async def test_records_map_to_entries(logger: logging.Logger) -> None:
    async with running_gateway() as gw:
        handler = LogsHandler(CH, gw.token("svc", publish=[CH]), gw.grpc_target, source="billing")
        logger.addHandler(handler)
        async with open_stream(gw.http, CH, gw.token(subscribe=[CH])) as stream:
            await stream.next()
            logger.warning("disk %d%% full", 91, extra={"disk": "/var", "order": 7})
            try:
                raise KeyError("customer_id")
            except KeyError:
                logger.exception("lookup failed")
            logging.getLogger("logs_gateway.publisher").warning("never sent: would loop back")
            await asyncio.to_thread(handler.flush)
            warning, error = (e.data for e in await stream.take(2))
    assert warning["message"] == "disk 91% full"
    assert (warning["level"], warning["severity"], warning["source"]) == ("warn", 13, "billing")
    assert warning["attributes"]["logger"] == "tests.sdk_handler"
    assert (warning["attributes"]["disk"], warning["attributes"]["order"]) == ("/var", 7)
    assert error["level"] == "error"
    assert error["attributes"]["exception_type"] == "KeyError"
    assert "Traceback" in error["attributes"]["exception"]
    assert "customer_id" in error["attributes"]["exception"]


def test_logging_levels_map_to_otel_severities() -> None:
    levels = [logging.DEBUG, logging.INFO, 25, logging.WARNING, logging.ERROR, logging.CRITICAL]
    assert [record_severity(n) for n in levels] == [5, 9, 11, 13, 17, 21]
    assert (record_severity(0), record_severity(99)) == (1, 24)
