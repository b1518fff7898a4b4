"""The hub's routes (subscriptions indexed by the channels they name, wildcard ones tested)
match exactly what testing every subscription against every channel gives."""

from __future__ import annotations

import random

from gateway.core.channels import parse_pattern
from gateway.core.hub import Hub
from gateway.core.subscription import EventSubscription

SEGMENTS = ("etl", "faas", "w1", "w2", "f1")


def _pattern(rng: random.Random, wild: bool) -> str:
    parts = ["logs", *(rng.choice(SEGMENTS) for _ in range(rng.randint(1, 3)))]
    if wild:
        parts[rng.randrange(1, len(parts))] = "*"
        if rng.random() < 0.5:
            parts[-1] = ">"
    return ":".join(parts)


async def test_routes_match_a_full_scan() -> None:
    rng = random.Random(7)
    hub = Hub(epoch=lambda: "e", max_per_owner=10_000, max_streams=10_000)
    channels = [_pattern(rng, wild=False) for _ in range(40)]
    subs = []
    for i in range(300):
        texts = {_pattern(rng, wild=rng.random() < 0.3) for _ in range(rng.randint(1, 3))}
        sub = EventSubscription(f"s{i}", tuple(map(parse_pattern, texts)), 0, "owner", 10)
        subs.append(sub)
        if i == 150:  # routes known before some subscriptions arrive, after others
            for channel in channels[:20]:
                hub._route(channel)
        await hub.add(sub)
    for sub in rng.sample(subs, 100):
        hub.remove(sub)
        subs.remove(sub)
    for channel in channels:
        matching = {s for s in subs if any(p.matches(channel) for p in s.patterns)}
        assert set(hub._route(channel)) == matching
        assert sorted(map(id, hub._route(channel))) == sorted(set(map(id, hub._route(channel))))
