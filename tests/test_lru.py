"""The hot paths' bounded cache: past its capacity the least recently used item goes."""

from __future__ import annotations

from gateway.core.lru import Lru


def test_the_least_recently_used_goes_first_and_a_used_one_stays() -> None:
    cache: Lru[str, int] = Lru(3)
    for n, key in enumerate("abc"):
        cache.add(key, n)
    assert cache.find("a") == 0  # now the most recently used
    cache.add("d", 3)  # past the capacity: "b", the least recently used, goes
    assert (cache.find("b"), cache.find("a"), cache.find("d"), len(cache)) == (None, 0, 3, 3)


def test_get_makes_a_missing_value_once_even_when_it_is_none() -> None:
    made: list[str] = []

    def make(key: str) -> int | None:
        made.append(key)
        return None

    cache: Lru[str, int | None] = Lru(2)
    assert [cache.get("x", make), cache.get("x", make)] == [None, None]
    assert made == ["x"]
