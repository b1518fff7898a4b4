"""The benchmark's C POST publisher (bench/post_load.c) sends what the post rows count:
against a scripted HTTP server on real sockets, entries go round-robin over the channels,
each channel's on one connection and in order, bodies carry the entry's offset on its
channel and its send time, at most IN_FLIGHT unanswered on a connection and WINDOW entries
a channel ahead of the subscribers' progress; refusals (an error status, or a 200 whose
body names an error) are counted apart."""

from __future__ import annotations

import asyncio
import json
import re
import time

from bench import native, posts
from bench.workers import Plan, Target

CHANNELS = ("c0", "c1", "c2")
Writer = asyncio.StreamWriter


def http_answer(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %b\r\nContent-Length: %d\r\n\r\n%b" % (status, len(body), body)


OK = http_answer(b"200 OK", b'{"offsets":[1]}')
REFUSED = http_answer(b"400 Bad Request", b'{"no":""}')
PARTIAL = http_answer(b"200 OK", b'[{"error":"full"}]')  # a batch's refused entry


class Script:
    """Answers each POST as `answer(number)` says, a few milliseconds late, in order, in
    two writes; records (connection, path, body) of each, the most POSTs ever read but not
    yet answered on a connection, and when `expected` POSTs have come."""

    def __init__(self, expected: int) -> None:
        self.seen: list[tuple[int, str, bytes]] = []
        self.most_unanswered = 0
        self.connections = 0
        self.expected = expected
        self.all_came = asyncio.Event()

    def answer(self, number: int) -> bytes:
        return {4: REFUSED, 7: PARTIAL}.get(number, OK)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection, self.connections = self.connections, self.connections + 1
        owed: asyncio.Queue[bytes | None] = asyncio.Queue()
        unanswered = [0]
        answering = asyncio.ensure_future(self._answer(owed, writer, unanswered))
        while not reader.at_eof():
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
            body = await reader.readexactly(length)
            self.seen.append((connection, head.split(b" ")[1].decode(), body))
            unanswered[0] += 1
            self.most_unanswered = max(self.most_unanswered, unanswered[0])
            owed.put_nowait(self.answer(len(self.seen) - 1))
            if len(self.seen) == self.expected:
                self.all_came.set()
        owed.put_nowait(None)
        await answering
        writer.close()

    async def _answer(
        self, owed: asyncio.Queue[bytes | None], writer: asyncio.StreamWriter, unanswered: list[int]
    ) -> None:
        while (answer := await owed.get()) is not None:
            await asyncio.sleep(0.005)  # so that the publisher's next POSTs come meanwhile
            writer.write(answer[:20])
            await writer.drain()
            writer.write(answer[20:])
            unanswered[0] -= 1


async def run(script: Script, plan: Plan, progress: int) -> list[str]:
    """post_load against `script` along `plan`; the subscribers' `progress` told once the
    script has what the window allowed before it; post_load's result line."""
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = Target("nchan", "127.0.0.1", port)
    child = await asyncio.create_subprocess_exec(
        *posts.command(native.posters(), target, plan),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(posts.channel_lines(target, plan.channels))
    assert await child.stdout.readline() == b"ready 2\n"
    child.stdin.write(b"go\n")
    await asyncio.wait_for(script.all_came.wait(), plan.seconds)
    child.stdin.write(b"progress %d\n" % progress)
    line = await child.stdout.readline()
    await child.wait()
    server.close()
    return line.decode().split()


async def test_c_publisher_sends_round_robin_in_order_and_counts_refusals() -> None:
    # WINDOW 3 ahead of progress 0: offsets 0 to 2 of each channel, 9 POSTs, until the
    # subscribers have taken 2 of each.
    script = Script(expected=9)
    plan = Plan("flood", CHANNELS, seconds=3.0, window=3, in_flight=2, connections=2)
    started = time.time_ns()
    kind, *figures = await run(script, plan, progress=2)
    sent, accepted, refused, first_send_ns, last_answer_ns = map(int, figures[:5])
    assert kind == "result"
    # Then WINDOW 3 ahead of progress 2: up to offset 4 on every channel, no more.
    assert sent == len(script.seen) == 5 * len(CHANNELS)
    assert (accepted, refused) == (sent - 2, 2)
    assert started <= first_send_ns <= last_answer_ns <= time.time_ns()
    assert float(figures[5]) >= 0
    assert script.connections == 2
    assert script.most_unanswered == 2  # pipelined, up to IN_FLIGHT
    # Channels 0 and 2 on one connection, 1 on the other; a channel's offsets in order.
    on = {path: {c for c, p, _ in script.seen if p == path} for _, path, _ in script.seen}
    assert len(on) == 3
    assert on["/pub/c0"] == on["/pub/c2"] != on["/pub/c1"]
    assert all(len(connections) == 1 for connections in on.values())
    for channel in CHANNELS:
        bodies = [body for _, path, body in script.seen if path == f"/pub/{channel}"]
        assert [json.loads(b)["offset"] for b in bodies] == list(range(5))
        assert all(json.loads(b)["channel"] == channel for b in bodies)
        for body in bodies:
            sent_ns = int(json.loads(body)["message"][:19])
            assert started <= sent_ns <= last_answer_ns
