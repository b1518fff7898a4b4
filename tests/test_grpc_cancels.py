"""A client that cancels its gRPC Subscribe is ordinary behaviour: the gateway logs nothing
above INFO for it (an ERROR per cancel would page an operator for what clients do)."""

from __future__ import annotations

import asyncio
import gc
import logging

import grpc
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from tests.conftest import running_gateway, wait_for

CANCELS = 1000
AT_ONCE = 50
CHANNEL = "logs:etl:ws1:wf1"


async def test_a_thousand_cancelled_subscribes_log_nothing_above_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # every logger: asyncio's "Task was destroyed" included
    async with running_gateway(max_connections_per_token=AT_ONCE) as gw:
        assert gw.gateway is not None
        hub = gw.gateway.hub
        metadata = [("authorization", f"Bearer {gw.token(subscribe=[CHANNEL])}")]
        async with grpc.aio.insecure_channel(gw.grpc_target) as channel:
            stub = pb_grpc.LogStreamStub(channel)

            async def subscribe_then_cancel() -> None:
                call = stub.Subscribe(pb.SubscribeRequest(channels=[CHANNEL]), metadata=metadata)
                first = await call.read()
                assert first.WhichOneof("kind") == "ready"
                call.cancel()

            for _ in range(CANCELS // AT_ONCE):
                await asyncio.gather(*(subscribe_then_cancel() for _ in range(AT_ONCE)))
                await wait_for(lambda: hub.subscriptions == 0, timeout=30)
        gc.collect()  # a task destroyed while pending is reported when it is collected
        await asyncio.sleep(0)
    loud = [r for r in caplog.records if r.levelno > logging.INFO]
    assert not loud, f"{len(loud)} lines above INFO, first: {loud[0].getMessage()}"
