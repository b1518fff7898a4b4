"""The memory broker's broker-wide seq index: which channel each seq was stored on.

Seqs are handed out one after another, so the index is a list of runs (consecutive seqs of
one channel, usually one append's entries to it): a run is its first seq (in an array) and
its channel's history. A read that matches most channels walks it in seq order, forward or
back, and costs the seqs it passes, not the channels held: a tail of `logs:>` over 100,000
channels reads back about as many runs as it returns. A seq whose channel no longer holds it
is a loss the walk counts exactly, whenever it was lost.

Runs below the oldest retained seq go (`trim`); a read that finds its cursor below the
first run left counts what lies between from the channels' own records of their losses.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class SeqIndex(Generic[V]):
    def __init__(self) -> None:
        self._starts = array("q")
        self._owners: list[V] = []
        self._gone = 0  # runs dropped from the front but not yet deleted (amortised)
        self._floor = 1  # the lowest seq placed, once every run has gone
        self._moved = 0  # how many times runs were deleted from the front (indices moved)

    def __len__(self) -> int:
        return len(self._owners) - self._gone

    @property
    def last(self) -> V | None:
        """The owner of the newest run (an append extends it while it stores on the same
        channel: the publish path compares before it calls `add`)."""
        return self._owners[-1] if len(self) else None

    def add(self, seq: int, owner: V) -> None:
        """A run of `owner` starts at `seq` (seqs in order)."""
        self._starts.append(seq)
        self._owners.append(owner)

    @property
    def first(self) -> int:
        """The lowest seq the index still places (when it holds none, the seq it was last
        trimmed below: nothing before it is placed)."""
        return self._starts[self._gone] if len(self) else self._floor

    def trim(self, below: int, head: int) -> int:
        """Drop the runs wholly below seq `below`; `head` is the newest seq stored, the end
        of the last run. Returns how many runs went."""
        gone, starts = self._gone, self._starts
        if below > head:
            keep = len(starts)
        else:  # the run holding `below` stays
            keep = max(gone, bisect.bisect_right(starts, below, lo=gone) - 1)
        freed = keep - gone
        self._gone = keep
        if keep == len(starts):
            self._floor = max(self._floor, below)
        if keep > 1024 and keep * 2 > len(starts):
            del starts[:keep]
            del self._owners[:keep]
            self._gone = 0
            self._moved += 1
        return freed

    def forward(self, after: int, upto: int) -> Iterator[tuple[V | None, int, int]]:
        """The runs holding seqs in (after, upto], each as (owner, lo, hi) clipped to that
        range, in seq order; seqs the index no longer places come as one run of owner
        None. The walk may wait between runs: runs added meanwhile are seen, and a trim is
        tolerated (each step looks its run up by seq)."""
        lo = after + 1
        starts, owners = self._starts, self._owners
        while lo <= upto:
            gone = self._gone
            if gone == len(starts):
                yield None, lo, upto
                return
            if lo < starts[gone]:
                yield None, lo, min(starts[gone] - 1, upto)
                lo = starts[gone]
                continue
            i = bisect.bisect_right(starts, lo, lo=gone) - 1
            nxt = starts[i + 1] if i + 1 < len(starts) else upto + 1
            yield owners[i], lo, min(nxt - 1, upto)
            lo = nxt

    def backward(self, before: int) -> Iterator[tuple[V, int, int]]:
        """The runs holding seqs below `before` (which is at most the head + 1), newest
        first, each as (owner, lo, hi) clipped to that range; live, as `forward`."""
        hi, i, moved = before - 1, -1, -1
        starts, owners = self._starts, self._owners
        while len(self) and hi >= self.first:
            if moved != self._moved:  # found by seq at first, and again once indices moved
                i, moved = bisect.bisect_right(starts, hi, lo=self._gone) - 1, self._moved
            lo = starts[i]
            yield owners[i], lo, hi
            hi, i = lo - 1, i - 1
