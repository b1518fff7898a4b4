"""The id of the request or stream being served, so every log line written meanwhile names it.

Each aiohttp request and each gRPC call runs in its own task, so a context variable set at
its start is seen by everything that runs for it, and by nothing else.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

current: ContextVar[str] = ContextVar("logs_gateway_request_id", default="")
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")


def adopt(incoming: str | None) -> str:
    """Make `incoming` (a proxy's id, e.g. nginx `$request_id`) the current id if it is
    well-formed, else a new random one; return it. A client cannot inject log syntax."""
    rid = incoming if incoming and _WELL_FORMED.fullmatch(incoming) else os.urandom(8).hex()
    current.set(rid)
    return rid
