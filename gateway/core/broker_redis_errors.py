"""What a Redis failure means to the client whose request met it.

Three answers, each true of what Redis holds: UNAVAILABLE (nothing was stored: resend),
OUTCOME_UNKNOWN (a write reached Redis but its answer did not come back in time: it may be
stored, or may still be; resend under the same key, which stores it once) and INTERNAL (a
failure resending cannot fix: logged with its cause, so an operator can).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, ResponseError

from gateway.core.errors import Code, GatewayError

log = logging.getLogger("logs_gateway.redis")
T = TypeVar("T")

# Refusals that pass: Redis is out of memory (expiry frees it), busy with a script, loading
# its data, or a replica for now. Any other error reply is a bug or a misconfiguration.
_TRANSIENT = ("OOM", "BUSY", "LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN")


async def store(redis: Redis, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
    """Run a writing script on a connection taken first, so a failure is told apart by
    when it came: before the command left, nothing is stored (UNAVAILABLE); after it, Redis
    may have run it or may still run it (OUTCOME_UNKNOWN), as when its answer comes after
    the socket timeout. An error reply means the script stored nothing (`refused`)."""
    pool = redis.connection_pool
    try:
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    except RedisError:
        raise unavailable() from None
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    try:
        try:
            await connection.send_command(*command)
            return await connection.read_response()
        except NoScriptError:  # Redis restarted or flushed its scripts: load it, again
            await connection.send_command("SCRIPT", "LOAD", script.script)
            await connection.read_response()
            await connection.send_command(*command)
            return await connection.read_response()
    except ResponseError as e:
        raise refused(e) from None
    except BaseException as e:
        await connection.disconnect()  # a late answer must never be read as another's
        if isinstance(e, RedisError):
            raise unknown() from None
        raise
    finally:
        await pool.release(connection)


async def call(awaitable: Awaitable[T]) -> T:
    """Await a command that writes nothing (or that may run twice), its failure turned into
    the client's answer: `refused`, or UNAVAILABLE."""
    try:
        return await awaitable
    except ResponseError as e:
        raise refused(e) from None
    except RedisError:
        raise unavailable() from None


def refused(error: ResponseError) -> GatewayError:
    """What a Redis error reply means to the client: retry later, or a failure retrying
    cannot fix (INTERNAL: logged with its cause, so an operator can)."""
    text = str(error)[:300]
    if text.startswith(_TRANSIENT):
        log.warning("redis refused a command; retry later", extra={"error": text})
        return GatewayError(
            Code.UNAVAILABLE, f"the log broker (Redis) refused: {text}; retry", reason="broker"
        )
    log.error("redis failed a command", extra={"error": text})
    return GatewayError(
        Code.INTERNAL, "the log broker (Redis) failed the command; see the gateway's log"
    )


def unavailable() -> GatewayError:
    return GatewayError(
        Code.UNAVAILABLE, "the log broker (Redis) is unavailable; retry", reason="broker"
    )


def unknown() -> GatewayError:
    return GatewayError(
        Code.OUTCOME_UNKNOWN,
        "the log broker (Redis) did not answer in time: the entries may be stored; resend "
        "with the same Idempotency-Key or producer sequence, which stores them once",
        reason="broker",
    )
