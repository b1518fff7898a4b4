"""The configured broker and the per-token stream counts beside it, built from the settings:
the one place that turns `--broker` and the history limits into the core's objects."""

from __future__ import annotations

from typing import Any

from gateway.app.config import Config
from gateway.core.broker import Broker, Limits
from gateway.core.broker_memory import MemoryBroker
from gateway.core.broker_nats import NatsBroker
from gateway.core.broker_redis import RedisBroker
from gateway.core.stream_counts import RedisStreamCounts
from gateway.core.stream_counts_nats import NatsStreamCounts


def make_broker(config: Config) -> Broker:
    """The configured broker; all take the same limits (Redis's memory is bounded by its
    own maxmemory, docs/SCALING.md)."""
    if config.broker == "memory":
        return memory_broker(config)
    if config.broker.startswith("nats://"):
        return nats_broker(config)
    return redis_broker(config)


def limits(config: Config) -> Limits:
    """The history limits every broker takes, from the settings (the one place)."""
    c = config
    return Limits(
        max_entries=c.history_entries,
        max_age=c.history_seconds,
        max_bytes=c.max_history_bytes,
        dedup_seconds=c.dedup_seconds,
        dedup_batches=c.dedup_batches,
        max_dedup_bytes=c.max_dedup_bytes,
    )


def memory_broker(config: Config) -> MemoryBroker:
    return MemoryBroker(limits(config))


def nats_broker(config: Config, **options: Any) -> NatsBroker:
    """`options`: NatsBroker's own (a timeout), which are no settings."""
    c = config
    return NatsBroker(
        c.broker,
        limits(c),
        stream=c.nats_stream,
        replicas=c.nats_replicas,
        lost_checked=c.nats_lost_channels,
        listed=c.nats_listed_channels,
        **options,
    )


def redis_broker(config: Config, **options: Any) -> RedisBroker:
    """`options`: RedisBroker's own (a key prefix, a timeout), which are no settings."""
    c = config
    return RedisBroker(c.broker, limits(c), feed_max_bytes=c.max_feed_bytes, **options)


def make_stream_counts(config: Config) -> RedisStreamCounts | NatsStreamCounts | None:
    """Per-token stream counts where every worker and instance sees the same ones: in the
    shared broker's own servers (Redis, or a JetStream KV bucket beside the NATS stream,
    replicated like it); None on the memory broker, where this process counts alone."""
    if config.broker.startswith("nats://"):
        bucket = f"{config.nats_stream}-streams"
        return NatsStreamCounts(config.broker, bucket=bucket, replicas=config.nats_replicas)
    if config.broker == "memory":
        return None
    return RedisStreamCounts(config.broker)
