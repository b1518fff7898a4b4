"""The aiohttp behaviours `DetachedStream` (gateway/api/http/sse_socket.py) relies on.

aiohttp is pinned to the range these were checked on (pyproject.toml). A new aiohttp that
changes either fails here, naming what changed, before any stream test fails obscurely.
"""

from __future__ import annotations

import asyncio
import gc
from importlib.metadata import version

from aiohttp import web

from tests.conftest import Running, entry
from tests.sse_client import open_stream

ETL = "logs:etl:ws:canary"


def test_the_installed_aiohttp_is_in_the_checked_range() -> None:
    major, minor = map(int, version("aiohttp").split(".")[:2])
    assert (major, minor) == (3, 14), "re-check DetachedStream against this aiohttp first"


async def test_a_detached_stream_keeps_streaming_and_its_request_is_gone(gw: Running) -> None:
    token = gw.token(subscribe=[ETL])
    async with open_stream(gw.http, ETL, token) as stream:
        await stream.next()
        assert gw.gateway is not None
        await gw.publish(gw.token(publish=[ETL]), [[entry(ETL, "after the handover")]])
        assert (await stream.next()).data["message"] == "after the handover"
        # The transport's protocol is ours now (set_protocol took), not aiohttp's.
        handlers = [t for t in asyncio.all_tasks() if "handle_request" in repr(t)]
        assert not handlers, "aiohttp still runs a handler task for a detached stream"
        # And no request object is held for it (aiohttp's connection_lost let it go);
        # cyclic garbage of earlier tests (a page's favicon request) is not held.
        gc.collect()
        assert not [o for o in gc.get_objects() if isinstance(o, web.BaseRequest)]
