"""What a broker's failure means to the client whose request met it, for every broker.

Three answers, each true of what the broker holds: UNAVAILABLE (nothing was stored:
resend), OUTCOME_UNKNOWN (a write reached the broker but its answer did not come back in
time: it may be stored, or may still be; resend under the same key, which stores it once)
and INTERNAL (a failure resending cannot fix: logged with its cause, so an operator can).
Each broker decides which one a failure of its own is (broker_redis_errors, broker_nats_
publish); the words and the logging are here, so a client reads the same answer whatever
the broker.
"""

from __future__ import annotations

import logging

from gateway.core.errors import Code, GatewayError


def unavailable(broker: str) -> GatewayError:
    """Nothing was stored: `broker` ("Redis", "NATS") could not be reached or refused."""
    return GatewayError(
        Code.UNAVAILABLE, f"the log broker ({broker}) is unavailable; retry", reason="broker"
    )


def unknown(broker: str) -> GatewayError:
    """The write left for `broker` and no answer came back in time."""
    return GatewayError(
        Code.OUTCOME_UNKNOWN,
        f"the log broker ({broker}) did not answer in time: the entries may be stored; "
        "resend with the same Idempotency-Key or producer sequence, which stores them once",
        reason="broker",
    )


def refused(broker: str, text: str, *, transient: bool) -> GatewayError:
    """An error reply `text` from `broker`: UNAVAILABLE when it may pass (`transient`: out
    of memory, no leader for now), else INTERNAL, logged with its cause."""
    name = broker.lower()
    log = logging.getLogger(f"logs_gateway.{name}")
    text = text[:300]
    if transient:
        log.warning(f"{name} refused a command; retry later", extra={"error": text})
        return GatewayError(
            Code.UNAVAILABLE, f"the log broker ({broker}) refused: {text}; retry", reason="broker"
        )
    log.error(f"{name} failed a command", extra={"error": text})
    return GatewayError(
        Code.INTERNAL, f"the log broker ({broker}) failed the command; see the gateway's log"
    )
