"""Unit tests of the gRPC servicers under grpcio-testing (auth, ACL, validation, acks, de-dup).

grpcio-testing drives synchronous servicers from its own threads, so `_Bridge` runs each of
our asyncio servicer methods on a private event loop in that thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import grpc_testing
import pytest
from logs_gateway.v1 import logs_pb2 as pb

from gateway.api.grpc.auth import admit, verify
from gateway.api.grpc.log_ingest import LogIngestServicer
from gateway.api.stopping import Stopping
from gateway.app.brokers import memory_broker
from gateway.core.admission import Admission, publish_limit
from gateway.core.errors import GatewayError
from gateway.core.hub import Hub
from gateway.core.ingest import Ingest, Limits
from gateway.core.tokens import Principal, Signer, Verifier
from tests.conftest import AUDIENCE, ISSUER, SECRET, entry, make_config, make_verifier

ETL = "logs:etl:workspace123:workflow456"
PUBLISH = pb.DESCRIPTOR.services_by_name["LogIngest"].methods_by_name["Publish"]


async def _aiter(requests: Iterator[pb.PublishRequest]) -> AsyncIterator[pb.PublishRequest]:
    for request in requests:  # blocks this private loop's thread: nothing else runs on it
        yield request


class _Bridge:
    """A synchronous face for LogIngestServicer, as grpcio-testing expects, with the
    server's Authenticator in front of it as on a real server."""

    def __init__(self, servicer: LogIngestServicer, verifier: Verifier) -> None:
        self._servicer = servicer
        self._verifier = verifier
        self._local = threading.local()

    def Publish(
        self, request_iterator: Iterator[pb.PublishRequest], context: Any
    ) -> Iterator[pb.PublishAck]:
        loop = asyncio.new_event_loop()
        context.abort = _sync_abort(context.abort)
        try:
            caller: Principal | GatewayError = verify(self._verifier, context.invocation_metadata())
        except GatewayError as e:
            caller = e
        responses = self._servicer.Publish(_aiter(request_iterator), context)
        call = contextvars.copy_context()  # one context for the call, as grpc.aio's one task
        try:
            loop.run_until_complete(loop.create_task(admit(caller, context), context=call))
            while True:
                try:
                    yield loop.run_until_complete(loop.create_task(anext(responses), context=call))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            loop.close()


def _sync_abort(abort: Any) -> Any:
    async def aborting(code: grpc.StatusCode, details: str) -> None:
        abort(code, details)

    return aborting


@pytest.fixture
def server() -> Any:
    broker = memory_broker(make_config())
    hub = Hub(epoch=lambda: broker.epoch, max_per_owner=16, max_streams=100)
    broker.add_listener(hub.deliver)
    verifier = make_verifier()
    ingest = Ingest(broker, Limits(max_entry_bytes=1024, max_batch_entries=10, publish_rate=0))
    streams = Admission(publish_limit(100, 16))
    servicer = _Bridge(LogIngestServicer(ingest, Stopping(), streams), verifier)
    return grpc_testing.server_from_dictionary(
        {pb.DESCRIPTOR.services_by_name["LogIngest"]: servicer}, grpc_testing.strict_real_time()
    )


def token(**rights: Any) -> str:
    return Signer(secret=SECRET.encode(), issuer=ISSUER, audience=AUDIENCE).mint("svc", **rights)


def start(server: Any, bearer: str | None) -> Any:
    metadata = (("authorization", f"Bearer {bearer}"),) if bearer else ()
    return server.invoke_stream_stream(PUBLISH, metadata, None)


def send(rpc: Any, sequence: int, *entries: pb.LogEntry, producer: str = "p") -> pb.PublishAck:
    rpc.send_request(pb.PublishRequest(producer_id=producer, sequence=sequence, entries=entries))
    ack: pb.PublishAck = rpc.take_response()
    return ack


def test_refused_without_token(server: Any) -> None:
    rpc = start(server, None)
    rpc.requests_closed()
    _, code, details = rpc.termination()
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "missing" in details


def test_refused_with_bad_token(server: Any) -> None:
    rpc = start(server, token(publish=[ETL])[:-4] + "AAAA")
    rpc.requests_closed()
    _, code, _ = rpc.termination()
    assert code is grpc.StatusCode.UNAUTHENTICATED


def test_acks_carry_offsets_in_order(server: Any) -> None:
    rpc = start(server, token(publish=["logs:etl:>"]))
    first = send(rpc, 1, entry(ETL, "a"), entry(ETL, "b"))
    second = send(rpc, 2, entry(ETL, "c"))
    rpc.requests_closed()
    assert first.sequence == 1 and second.sequence == 2
    assert [r.offset for r in first.results] + [r.offset for r in second.results] == [0, 1, 2]
    assert all(r.code == 0 and r.cursor for r in [*first.results, *second.results])
    assert rpc.termination()[1] is grpc.StatusCode.OK


def test_forbidden_channel_refused_alone(server: Any) -> None:
    rpc = start(server, token(publish=["logs:etl:workspace123:>"]))
    ack = send(rpc, 1, entry(ETL, "ok"), entry("logs:etl:workspace1234:x", "no"), entry(ETL, "ok2"))
    after = send(rpc, 2, entry(ETL, "still streaming"))
    rpc.requests_closed()
    codes = [r.code for r in ack.results]
    assert codes == [0, grpc.StatusCode.PERMISSION_DENIED.value[0], 0]
    assert "logs:etl:workspace1234:x" in ack.results[1].message
    assert [r.offset for r in after.results] == [2]


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (pb.LogEntry(channel="logs:etl", body="x"), "at least"),
        (pb.LogEntry(channel="logs:etl:a b:c", body="x"), "segment"),
        (pb.LogEntry(channel=ETL, body="   "), "empty"),
        (pb.LogEntry(channel=ETL, body="x", trace_id=b"short"), "trace_id"),
        (pb.LogEntry(channel=ETL, body="x", severity_text="loud"), "unknown level"),
    ],
)
def test_invalid_entries_named(server: Any, bad: pb.LogEntry, needle: str) -> None:
    rpc = start(server, token(publish=["logs:>"]))
    ack = send(rpc, 1, entry(ETL, "good"), bad)
    rpc.requests_closed()
    assert ack.results[0].code == 0
    assert ack.results[1].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert needle in ack.results[1].message


def test_size_limits(server: Any) -> None:
    rpc = start(server, token(publish=["logs:>"]))
    big = send(rpc, 1, entry(ETL, "x" * 2000))
    many = send(rpc, 2, *[entry(ETL, "m")] * 11)
    rpc.requests_closed()
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert big.results[0].code == exhausted and "1024" in big.results[0].message
    assert {r.code for r in many.results} == {exhausted}
    assert "at most 10" in many.results[0].message


def test_replayed_batch_is_acked_not_stored_twice(server: Any) -> None:
    rpc = start(server, token(publish=["logs:>"]))
    first = send(rpc, 7, entry(ETL, "a"), entry(ETL, "b"), producer="svc-1")
    again = send(rpc, 7, entry(ETL, "a"), entry(ETL, "b"), producer="svc-1")
    other = send(rpc, 7, entry(ETL, "c"), producer="svc-2")
    rpc.requests_closed()
    assert not first.duplicate and again.duplicate
    assert [r.offset for r in again.results] == [r.offset for r in first.results] == [0, 1]
    assert [r.cursor for r in again.results] == [r.cursor for r in first.results]
    assert [r.offset for r in other.results] == [2]
