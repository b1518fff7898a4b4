"""Segment trees over the channel grammar (DESIGN §3), both ways round.

`ChannelIndex` holds concrete channels and answers a pattern: a replay or a tail over
`logs:*:ws1:>` visits only the channels under the branches the pattern can take, not every
channel held. `PatternIndex` holds subscribed patterns and answers a channel: routing a new
channel costs its segments (and the wildcard branches open at each), not every pattern
subscribed. This is the shape of NATS's sublist; the grammar is the same.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Generic, TypeVar

from gateway.core.channels import Pattern

V = TypeVar("V")
S = TypeVar("S")


class _Leaf(Generic[V]):
    __slots__ = ("newest", "value")

    def __init__(self, value: V, newest: int) -> None:
        self.value, self.newest = value, newest


class _ChannelNode(Generic[V]):
    """Channels one segment below this node (`leaves`) and deeper ones (`children`), each
    kept in the order it was last touched, so the newest come last; `newest` is the highest
    seq touched anywhere below. `ordered` stays true while touches came in seq order (then
    a walk from the newest end may stop at the first that is too old)."""

    __slots__ = ("children", "leaves", "newest", "ordered")

    def __init__(self) -> None:
        self.children: dict[str, _ChannelNode[V]] = {}
        self.leaves: dict[str, _Leaf[V]] = {}
        self.newest = 0
        self.ordered = True

    def __bool__(self) -> bool:
        return bool(self.children or self.leaves)

    def leaves_after(self, after: int) -> Iterator[V]:
        for leaf in reversed(self.leaves.values()):
            if leaf.newest > after:
                yield leaf.value
            elif self.ordered:
                return

    def children_after(self, after: int) -> Iterator[_ChannelNode[V]]:
        for child in reversed(self.children.values()):
            if child.newest > after:
                yield child
            elif self.ordered:
                return

    def every(self, after: int) -> Iterator[V]:
        yield from self.leaves_after(after)
        for child in self.children_after(after):
            yield from child.every(after)


class ChannelIndex(Generic[V]):
    """Concrete channel names -> one value each, found by name or by pattern, and by how
    recently each was touched (`put` with a seq: a channel's newest event)."""

    def __init__(self) -> None:
        self._root: _ChannelNode[V] = _ChannelNode()
        self._size = 0
        # The channel put last, with the nodes on its path and its leaf.
        self._latest: tuple[str, list[_ChannelNode[V]], _Leaf[V]] | None = None

    def __len__(self) -> int:
        return self._size

    def put(self, channel: str, value: V, seq: int = 0) -> None:
        """Hold `value` for `channel` (replacing the one held), touched at `seq`: a match
        with `after` below it finds the channel. Touch in seq order to keep matches short."""
        latest = self._latest
        if latest is not None and latest[0] == channel:
            # Put last, it is still the newest at every level (a busy channel, batch after
            # batch): only the seqs move.
            _, nodes, leaf = latest
        else:
            nodes, leaf = self._to_end(channel, value, seq)
            self._latest = (channel, nodes, leaf)
        leaf.value = value
        if seq > leaf.newest:
            leaf.newest = seq
        for node in nodes:  # (the publish path: a loop, not a call per node)
            if seq > node.newest:
                node.newest = seq
            elif seq < node.newest:
                node.ordered = False

    def _to_end(self, channel: str, value: V, seq: int) -> tuple[list[_ChannelNode[V]], _Leaf[V]]:
        """Make `channel` the most recently touched at every level of its path (adding what
        it lacks); its nodes from the root, and its leaf."""
        *path, last = channel.split(":")
        node = self._root
        nodes = [node]
        for segment in path:
            child = node.children.pop(segment, None)
            if child is None:
                child = _ChannelNode()
            node.children[segment] = child  # last: the most recently touched
            node = child
            nodes.append(node)
        leaf = node.leaves.pop(last, None)
        if leaf is None:
            self._size += 1
            leaf = _Leaf(value, seq)
        node.leaves[last] = leaf
        return nodes, leaf

    def pop(self, channel: str) -> V | None:
        """Forget `channel` and every node only it used."""
        if self._latest is not None and self._latest[0] == channel:
            self._latest = None
        *path, last = channel.split(":")
        trail = [self._root]
        for segment in path:
            found = trail[-1].children.get(segment)
            if found is None:
                return None
            trail.append(found)
        leaf = trail[-1].leaves.pop(last, None)
        if leaf is None:
            return None
        self._size -= 1
        for parent, segment, node in zip(trail[-2::-1], path[::-1], trail[:0:-1], strict=True):
            if node:
                break
            del parent.children[segment]
        return leaf.value

    def match(self, pattern: Pattern, after: int = -1) -> Iterator[V]:
        """The values of the channels `pattern` matches that were touched after seq
        `after` (each once, newest first where touches came in order)."""
        return _matching(self._root, pattern.segments, 0, after)

    def values(self) -> Iterator[V]:
        return self._root.every(-1)

    def newest(
        self, pattern: Pattern, before: int | None, limit: int, keep: Callable[[V], bool]
    ) -> Iterator[tuple[int, V]]:
        """(seq, value) of the channels `pattern` matches that were touched last below seq
        `before` (None: any) and that `keep` accepts: among them, surely the `limit` most
        recent. Where touches came in order a node gives at most `limit` of its channels
        (newest first), so a page of the newest costs the page, not every channel held."""
        cap = _Cap(before, limit, keep)
        return _newest(self._root, pattern.segments, 0, cap)

    def newest_first(self, pattern: Pattern) -> Iterator[tuple[int, V]]:
        """(seq, value) of the channels `pattern` matches, by the seq they were touched last,
        newest first, lazily: a merge of each matching node's leaves, so taking the first k
        costs about k and the nodes matched (a node whose touches came out of seq order is
        sorted whole first: its channels)."""
        runs = [_descending(node, leaf) for node, leaf in _leaf_nodes(self._root, pattern, 0)]
        return heapq.merge(*runs, key=lambda found: found[0], reverse=True)


def _matching(node: _ChannelNode[V], segments: tuple[str, ...], at: int, after: int) -> Iterator[V]:
    if node.newest <= after:
        return
    segment = segments[at]
    if segment == ">":
        yield from node.every(after)
    elif at == len(segments) - 1:
        if segment == "*":
            yield from node.leaves_after(after)
        elif (leaf := node.leaves.get(segment)) is not None and leaf.newest > after:
            yield leaf.value
    elif segment == "*":
        for each in node.children_after(after):
            yield from _matching(each, segments, at + 1, after)
    elif (child := node.children.get(segment)) is not None:
        yield from _matching(child, segments, at + 1, after)


def _leaf_nodes(
    node: _ChannelNode[V], pattern: Pattern, at: int
) -> Iterator[tuple[_ChannelNode[V], str | None]]:
    """The nodes whose leaves `pattern` matches, each with the one leaf's name when it
    names one (None: all of them)."""
    segment = pattern.segments[at]
    if segment == ">":
        yield node, None
        for each in node.children.values():
            yield from _leaf_nodes(each, pattern, at)
    elif at == len(pattern.segments) - 1:
        yield node, None if segment == "*" else segment
    elif segment == "*":
        for each in node.children.values():
            yield from _leaf_nodes(each, pattern, at + 1)
    elif (child := node.children.get(segment)) is not None:
        yield from _leaf_nodes(child, pattern, at + 1)


def _descending(node: _ChannelNode[V], name: str | None) -> Iterator[tuple[int, V]]:
    """A node's leaves (or its leaf `name`) as (seq, value), newest first, from a copy taken
    at the first: a leaf touched later is given no higher seq than the one before it (what
    it held when the copy was taken lies below that), so the order holds while the index
    changes under a read that takes its time."""
    leaves: list[_Leaf[V]]
    if name is not None:
        leaf = node.leaves.get(name)
        leaves = [] if leaf is None else [leaf]
    elif node.ordered:
        leaves = list(node.leaves.values())
        leaves.reverse()
    else:
        leaves = sorted(node.leaves.values(), key=attrgetter("newest"), reverse=True)
    bound: int | None = None
    for leaf in leaves:
        bound = leaf.newest if bound is None else min(leaf.newest, bound)
        yield bound, leaf.value


class _Cap(Generic[V]):
    def __init__(self, before: int | None, limit: int, keep: Callable[[V], bool]) -> None:
        self.before, self.limit, self.keep = before, limit, keep

    def leaves(self, node: _ChannelNode[V]) -> Iterator[tuple[int, V]]:
        taken = 0
        for leaf in reversed(node.leaves.values()):
            if (self.before is None or leaf.newest < self.before) and self.keep(leaf.value):
                yield leaf.newest, leaf.value
                taken += 1
                if taken >= self.limit and node.ordered:
                    return

    def every(self, node: _ChannelNode[V]) -> Iterator[tuple[int, V]]:
        yield from self.leaves(node)
        for child in node.children.values():
            yield from self.every(child)


def _newest(
    node: _ChannelNode[V], segments: tuple[str, ...], at: int, cap: _Cap[V]
) -> Iterator[tuple[int, V]]:
    segment = segments[at]
    if segment == ">":
        yield from cap.every(node)
    elif at == len(segments) - 1:
        if segment == "*":
            yield from cap.leaves(node)
        elif (leaf := node.leaves.get(segment)) is not None:
            before = cap.before is None or leaf.newest < cap.before
            if before and cap.keep(leaf.value):
                yield leaf.newest, leaf.value
    elif segment == "*":
        for each in node.children.values():
            yield from _newest(each, segments, at + 1, cap)
    elif (child := node.children.get(segment)) is not None:
        yield from _newest(child, segments, at + 1, cap)


class _PatternNode(Generic[S]):
    """Subscribers of the patterns that end at this node, and longer patterns below it."""

    __slots__ = ("children", "here")

    def __init__(self) -> None:
        self.children: dict[str, _PatternNode[S]] = {}
        self.here: dict[S, int] = {}  # subscriber -> how many of its patterns end here


class PatternIndex(Generic[S]):
    """Subscribed patterns -> their subscribers, found by concrete channel."""

    def __init__(self) -> None:
        self._root: _PatternNode[S] = _PatternNode()

    def add(self, pattern: Pattern, subscriber: S) -> None:
        node = self._root
        for segment in pattern.segments:
            node = node.children.get(segment) or node.children.setdefault(segment, _PatternNode())
        node.here[subscriber] = node.here.get(subscriber, 0) + 1

    def remove(self, pattern: Pattern, subscriber: S) -> None:
        """Undo one `add` of the same pattern and subscriber; prunes empty branches."""
        trail = [self._root]
        for segment in pattern.segments:
            found = trail[-1].children.get(segment)
            if found is None:
                return
            trail.append(found)
        here = trail[-1].here
        if subscriber not in here:
            return
        here[subscriber] -= 1
        if not here[subscriber]:
            del here[subscriber]
        path = pattern.segments
        for parent, segment, node in zip(trail[-2::-1], path[::-1], trail[:0:-1], strict=True):
            if node.here or node.children:
                break
            del parent.children[segment]

    def match(self, channel: str) -> list[S]:
        """Every subscriber with a pattern matching `channel`, each once."""
        found: dict[S, None] = {}
        _subscribers(self._root, channel.split(":"), 0, found)
        return list(found)


def _subscribers(node: _PatternNode[S], segments: list[str], at: int, found: dict[S, None]) -> None:
    if at == len(segments):
        found.update(dict.fromkeys(node.here))
        return
    children = node.children
    if (rest := children.get(">")) is not None:
        found.update(dict.fromkeys(rest.here))
    if (exact := children.get(segments[at])) is not None:
        _subscribers(exact, segments, at + 1, found)
    if (one := children.get("*")) is not None:
        _subscribers(one, segments, at + 1, found)
