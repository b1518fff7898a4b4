"""Every broker answers a failure in the same words and codes (gateway/core/broker_errors)."""

from __future__ import annotations

import logging

import pytest
from nats.js.errors import APIError
from redis.exceptions import ResponseError

from gateway.core import broker_nats_publish, broker_redis_errors
from gateway.core.errors import Code


def test_unavailable_and_unknown_name_the_broker_and_say_resend() -> None:
    for broker, error in (
        ("Redis", broker_redis_errors.unavailable()),
        ("NATS", broker_nats_publish.unavailable()),
    ):
        assert error.code == Code.UNAVAILABLE
        assert error.message == f"the log broker ({broker}) is unavailable; retry"
    unknown = broker_redis_errors.unknown()
    assert unknown.code == Code.OUTCOME_UNKNOWN
    assert "may be stored" in unknown.message and "same Idempotency-Key" in unknown.message


def test_a_transient_refusal_says_retry_and_quotes_the_broker() -> None:
    redis = broker_redis_errors.refused(ResponseError("OOM command not allowed"))
    nats = broker_nats_publish.refused(APIError(code=503, description="no leader", err_code=10077))
    assert redis.code == nats.code == Code.UNAVAILABLE
    assert redis.message == "the log broker (Redis) refused: OOM command not allowed; retry"
    assert nats.message == "the log broker (NATS) refused: no leader (code 10077); retry"


def test_a_lasting_refusal_is_internal_and_logged_with_its_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    redis = broker_redis_errors.refused(ResponseError("ERR unknown command"))
    nats = broker_nats_publish.refused(APIError(code=400, description="bad", err_code=10999))
    assert redis.code == nats.code == Code.INTERNAL
    assert "see the gateway's log" in redis.message and "(Redis)" in redis.message
    assert "(NATS)" in nats.message
    causes = [(r.name, r.levelno, getattr(r, "error", "")) for r in caplog.records]
    assert ("logs_gateway.redis", logging.ERROR, "ERR unknown command") in causes
    assert ("logs_gateway.nats", logging.ERROR, "bad (code 10999)") in causes
