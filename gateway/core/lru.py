"""A bounded cache for the hot paths: past its capacity the least recently used item goes,
so a burst of new keys costs the cache its coldest items, never everything it holds."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    __slots__ = ("_capacity", "_items")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def find(self, key: K) -> V | None:
        """The value of `key` (now the most recently used), or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def add(self, key: K, value: V) -> None:
        self._items[key] = value
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, key: K, make: Callable[[K], V]) -> V:
        """The value of `key`, made from it and kept when absent (a value may be None)."""
        items = self._items
        if key in items:
            items.move_to_end(key)
            return items[key]
        value = make(key)
        self.add(key, value)
        return value

    def clear(self) -> None:
        self._items.clear()
