"""Range-function results kept per window end, across queries: `rate(sel[r])` & co.

Why: a dashboard's panels ask for the same rate of the same series at once (requests by job,
by code, top 5, the error ratio's denominator), and a moved or refreshed range asks mostly
for steps it had a moment ago. The query frontends of Thanos and Cortex split ranges by
step-aligned intervals for the same reason. Here the unit is finer: the value of
`rate(sel[r])` at a step depends only on the samples in that step's window (t - r, t]. So a
value computed once stays right until a sample is written into that window.

Kept per (function, matchers, range) and per series: the value at each window end already
asked. A query evaluates only the ends it lacks (one evaluation, however many threads ask at
once) and reads the rest. Staleness comes from the head's write log: `Head.written_since`
gives the lowest timestamp written since the entry was filled, and every end at or after it
is evaluated again. Only ranges the head covers use this, since storage writes do not pass
through the head's log; instant queries (rules) do not use it either.

The results are the same arrays a full evaluation gives, bit for bit, and in the same series
order (tests/promql/test_stepcache.py). The aggregation, binary operators and the rest of the
query still run on the whole grid.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from heron.metrics.head import Head
from heron.metrics.model import Labels

Evaluated = tuple[list[Labels], np.ndarray, np.ndarray]  # labels, values (N, T), present (N, T)


class Busy(Exception):
    """The entry stayed locked by another query past this query's deadline."""


@dataclass
class _Chunk:
    """The window ends one evaluation added (no end is in two chunks of an entry)."""

    labels: list[Labels]  # sorted, unique
    ends: np.ndarray  # sorted
    values: np.ndarray  # (len(labels), len(ends)), NaN where absent
    present: np.ndarray
    rows: np.ndarray | None = None  # its rows in the entry's label union (None: the same list)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.present.nbytes)

    def keep(self, cols: np.ndarray) -> _Chunk:
        return _Chunk(self.labels, self.ends[cols], self.values[:, cols], self.present[:, cols], self.rows)


@dataclass
class _Entry:
    chunks: list[_Chunk] = field(default_factory=list)  # oldest first
    labels: list[Labels] = field(default_factory=list)  # sorted union of the chunks' label sets
    writes: int = -1  # head writes counted before the columns were evaluated
    relabeled: list[Labels] | None = None  # `relabel` of every label set, kept while labels stay
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.chunks)

    def reindex(self) -> None:
        """The label union and each chunk's rows in it, after chunks came or went."""
        known: set[Labels] = set()
        for c in self.chunks:
            known.update(c.labels)
        if len(known) != len(self.labels) or not all(lb in known for lb in self.labels):
            self.labels, self.relabeled = sorted(known), None
        rank = None
        for c in self.chunks:
            if c.labels == self.labels:
                c.rows = None
                continue
            if rank is None:
                rank = {lb: i for i, lb in enumerate(self.labels)}
            c.rows = np.fromiter((rank[lb] for lb in c.labels), np.int64, len(c.labels))


class StepCache:
    """Bounded (`max_bytes`, least recently used entries go first) and thread-safe.

    An entry is a list of chunks, one per evaluation: a query appends its new window ends
    without copying what the entry holds, and reads its columns from whichever chunks have
    them. Past MAX_CHUNKS the chunks are merged into one (a copy, now and then)."""

    MAX_CHUNKS = 8

    def __init__(self, max_bytes: int = 128 << 20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[object, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.size = 0
        self.hits = 0  # window ends read from the cache
        self.misses = 0  # window ends evaluated

    def _entry(self, key: object) -> _Entry:
        with self._lock:
            e = self._entries.get(key)
            if e is None:
                e = self._entries[key] = _Entry()
            else:
                self._entries.move_to_end(key)
            return e

    def get(self, key: object, head: Head, ends: np.ndarray, evaluate: Callable[[np.ndarray], Evaluated],
            deadline: float, relabel: Callable[[Labels], Labels] | None = None) -> Evaluated:
        """(labels, values, present) at window ends `ends` (sorted, unique), evaluating only
        the ends the entry lacks with `evaluate(missing_ends)`; the labels pass through
        `relabel` (computed once per entry, not per query). Series absent at every asked end
        may be included (all NaN): the caller compacts."""
        e = self._entry(key)
        if not e.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise Busy()
        try:
            writes = head.writes
            if e.writes >= 0 and e.chunks:
                low = head.written_since(e.writes)
                if low is not None:  # samples landed in windows ending at or after `low`
                    kept = [c if c.ends[-1] < low else c.keep(c.ends < low) for c in e.chunks]
                    e.chunks = [c for c in kept if len(c.ends)]
            held = np.concatenate([c.ends for c in e.chunks]) if e.chunks else ends[:0]
            have = np.isin(ends, held)
            missing = ends[~have]
            self.hits += int(have.sum())
            self.misses += len(missing)
            changed = False
            if len(missing):
                labels, values, present = evaluate(missing)
                if len(set(labels)) != len(labels):  # label sets repeat: not mergeable by name
                    e.chunks, e.labels, e.writes, e.relabeled = [], [], -1, None
                    labels, values, present = evaluate(ends) if have.any() else (labels, values, present)
                    return [relabel(lb) for lb in labels] if relabel else labels, values, present
                e.chunks.append(_Chunk(list(labels), missing, values, present))
                changed = True
            if len(e.chunks) > self.MAX_CHUNKS:
                e.reindex()
                e.chunks = [self._merged(e)]
                changed = True
            if changed:
                e.reindex()
            e.writes = writes
            out = self._assemble(e, ends)
            if relabel is None:
                out_labels = list(e.labels)
            else:
                if e.relabeled is None or len(e.relabeled) != len(e.labels):
                    e.relabeled = [relabel(lb) for lb in e.labels]
                out_labels = list(e.relabeled)
            self._account(key, e)
            return out_labels, out[0], out[1]
        finally:
            e.lock.release()

    @staticmethod
    def _assemble(e: _Entry, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The asked columns, gathered from the chunks that hold them."""
        values = np.full((len(e.labels), len(ends)), np.nan)
        present = np.zeros((len(e.labels), len(ends)), bool)
        for c in e.chunks:
            if not len(c.ends):
                continue
            at = np.searchsorted(c.ends, ends)
            np.minimum(at, len(c.ends) - 1, out=at)
            hit = c.ends[at] == ends
            if not hit.any():
                continue
            dst, src = _run(np.flatnonzero(hit)), _run(at[hit])  # slices when contiguous (usual)
            rows = slice(None) if c.rows is None else c.rows
            if isinstance(dst, slice):
                values[rows, dst] = c.values[:, src]
                present[rows, dst] = c.present[:, src]
            else:
                values[_ix(rows, dst)] = c.values[:, src]
                present[_ix(rows, dst)] = c.present[:, src]
        return values, present

    @staticmethod
    def _merged(e: _Entry) -> _Chunk:
        """All chunks as one (the entry's label union and every end it holds)."""
        ends = np.sort(np.concatenate([c.ends for c in e.chunks]))
        values, present = StepCache._assemble(e, ends)
        return _Chunk(e.labels, ends, values, present)

    def _account(self, key: object, e: _Entry) -> None:
        """Bound the entry (its oldest chunks go when it alone takes a quarter of the budget,
        the newest stays) and the cache (least recently used entries first)."""
        while e.nbytes > self.max_bytes // 4 and len(e.chunks) > 1:
            e.chunks.pop(0)
            e.reindex()
        with self._lock:
            self.size = sum(x.nbytes for x in self._entries.values())
            while self.size > self.max_bytes and len(self._entries) > 1:
                old_key, old = next(iter(self._entries.items()))
                if old_key == key:
                    self._entries.move_to_end(key)
                    continue
                del self._entries[old_key]
                self.size -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.size = 0


def _run(idx: np.ndarray) -> slice | np.ndarray:
    """`idx` as a slice when it is a run of consecutive indexes (cheaper to read and write)."""
    if len(idx) and int(idx[-1]) - int(idx[0]) + 1 == len(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _ix(rows: slice | np.ndarray, cols: np.ndarray) -> tuple[slice | np.ndarray, np.ndarray]:
    if isinstance(rows, slice):
        return rows, cols
    return rows[:, None], cols[None, :]
