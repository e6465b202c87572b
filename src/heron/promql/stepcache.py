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
class _Entry:
    labels: list[Labels] = field(default_factory=list)  # sorted, unique
    ends: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # sorted window ends
    values: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    present: np.ndarray = field(default_factory=lambda: np.empty((0, 0), bool))
    writes: int = -1  # head writes counted before the columns were evaluated
    relabeled: list[Labels] | None = None  # `relabel` of every label set, kept while labels stay
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.present.nbytes)


class StepCache:
    """Bounded (`max_bytes`, least recently used entries go first) and thread-safe."""

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
        `relabel` (computed once per entry, not per query)."""
        e = self._entry(key)
        if not e.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise Busy()
        try:
            writes = head.writes
            if e.writes >= 0 and len(e.ends):
                low = head.written_since(e.writes)
                if low is not None:  # samples landed in windows ending at or after `low`
                    keep = e.ends < low
                    e.ends, e.values, e.present = e.ends[keep], e.values[:, keep], e.present[:, keep]
            have = np.isin(ends, e.ends, assume_unique=True)
            missing = ends[~have]
            self.hits += int(have.sum())
            self.misses += len(missing)
            if len(missing):
                labels, values, present = evaluate(missing)
                if len(set(labels)) != len(labels):  # label sets repeat: not mergeable by name
                    e.ends, e.writes, e.relabeled = np.empty(0, np.int64), -1, None
                    labels, values, present = evaluate(ends) if have.any() else (labels, values, present)
                    return [relabel(lb) for lb in labels] if relabel else labels, values, present
                self._merge(e, labels, missing, values, present)
            e.writes = writes
            cols = np.searchsorted(e.ends, ends)
            if relabel is None:
                out_labels = list(e.labels)
            else:
                if e.relabeled is None or len(e.relabeled) != len(e.labels):
                    e.relabeled = [relabel(lb) for lb in e.labels]
                out_labels = list(e.relabeled)
            out = out_labels, e.values[:, cols], e.present[:, cols]
            self._account(key, e, ends)
            return out
        finally:
            e.lock.release()

    def _merge(self, e: _Entry, labels: list[Labels], ends: np.ndarray, values: np.ndarray,
               present: np.ndarray) -> None:
        """Add the columns of newly evaluated `ends` (series `labels`) to the entry."""
        if not len(e.ends):
            e.labels, e.ends, e.values, e.present, e.relabeled = list(labels), ends, values, present, None
            return
        old_labels = e.labels
        if labels == old_labels:
            all_labels = old_labels
        else:
            known = set(old_labels)
            all_labels = old_labels if all(lb in known for lb in labels) else sorted(known.union(labels))
        all_ends = np.union1d(e.ends, ends)
        rows_v = np.full((len(all_labels), len(all_ends)), np.nan)
        rows_p = np.zeros((len(all_labels), len(all_ends)), bool)
        old_c = np.searchsorted(all_ends, e.ends)
        new_c = np.searchsorted(all_ends, ends)
        old_r: slice | np.ndarray
        if all_labels is old_labels:
            old_r = slice(None)
        else:
            rank = {lb: i for i, lb in enumerate(all_labels)}
            old_r = np.fromiter((rank[lb] for lb in old_labels), np.int64, len(old_labels))
        if labels is old_labels or labels == all_labels:
            new_r: slice | np.ndarray = slice(None)
        else:
            rank = {lb: i for i, lb in enumerate(all_labels)}
            new_r = np.fromiter((rank[lb] for lb in labels), np.int64, len(labels))
        rows_v[_ix(old_r, old_c)] = e.values
        rows_p[_ix(old_r, old_c)] = e.present
        rows_v[_ix(new_r, new_c)] = values
        rows_p[_ix(new_r, new_c)] = present
        if all_labels is not old_labels:
            e.relabeled = None
        e.labels, e.ends, e.values, e.present = all_labels, all_ends, rows_v, rows_p

    def _account(self, key: object, e: _Entry, ends: np.ndarray) -> None:
        """Bound the entry (to the asked ends when it alone would take a quarter of the
        budget) and the cache (least recently used entries first)."""
        if e.nbytes > self.max_bytes // 4:
            cols = np.searchsorted(e.ends, ends)
            e.ends, e.values, e.present = ends, e.values[:, cols], e.present[:, cols]
            keep = e.present.any(axis=1)
            if not keep.all():
                e.labels = [e.labels[i] for i in np.flatnonzero(keep).tolist()]
                e.values, e.present, e.relabeled = e.values[keep], e.present[keep], None
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


def _ix(rows: slice | np.ndarray, cols: np.ndarray) -> tuple[slice | np.ndarray, np.ndarray]:
    if isinstance(rows, slice):
        return rows, cols
    return rows[:, None], cols[None, :]
