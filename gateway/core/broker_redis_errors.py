"""Which of the broker answers (broker_errors: UNAVAILABLE, OUTCOME_UNKNOWN, INTERNAL) a
Redis failure is: told apart by when it came (before the command left, or after) and by
the error reply (a transient refusal, or a failure resending cannot fix).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, ResponseError

from gateway.core import broker_errors
from gateway.core.errors import GatewayError

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
    text = str(error)
    return broker_errors.refused("Redis", text, transient=text.startswith(_TRANSIENT))


def unavailable() -> GatewayError:
    return broker_errors.unavailable("Redis")


def unknown() -> GatewayError:
    return broker_errors.unknown("Redis")
