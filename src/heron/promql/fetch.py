"""Storage reads for PromQL: label matchers to ClickHouse SQL, samples back as flat numpy arrays.

A selection is every matching series with its samples in [mint, maxt], sorted by (series, time),
held as flat arrays plus per-series offsets; evaluation then works on whole arrays. Each sample
also gets a search key `series_index << 42 | (ts - base)` so one `np.searchsorted` finds the
window of every (series, step) pair at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from heron.metrics.head import Head, SampleLimit
from heron.metrics.model import Labels
from heron.storage.base import Storage

KEY_SHIFT = 42  # 2**42 ms ≈ 139 years of time span per series key


class Matcher(NamedTuple):
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str


class QueryError(Exception):
    """A PromQL evaluation error (bad data, limits); `kind` is the Prometheus errorType."""

    def __init__(self, message: str, kind: str = "execution") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Selection:
    """Samples of the series a selector matched, flat and sorted by (series, ts)."""

    labels: list[Labels]
    ts: np.ndarray  # int64 ms
    values: np.ndarray  # float64
    starts: np.ndarray  # int64 (n_series + 1,) offsets into ts/values
    mint: int
    maxt: int

    @property
    def base(self) -> int:
        return self.mint

    def keys(self) -> np.ndarray:
        """`series << 42 | (ts - base)` for every sample (computed once, cached)."""
        cached = getattr(self, "_keys", None)
        if cached is None:
            sidx = np.repeat(np.arange(len(self.labels), dtype=np.int64), np.diff(self.starts))
            cached = (sidx << KEY_SHIFT) + (self.ts - self.base)
            self._keys = cached
        return cached

    def query_keys(self, ts: np.ndarray) -> np.ndarray:
        """(n_series, n_steps) keys of per-step times `ts` (int64 ms, each >= base)."""
        sidx = np.arange(len(self.labels), dtype=np.int64)[:, None] << KEY_SHIFT
        return sidx + (np.asarray(ts, dtype=np.int64) - self.base)[None, :]

    def without(self, mask: np.ndarray) -> Selection:
        """The same selection with the samples where `mask` is true removed (stale markers)."""
        keep = ~mask
        if keep.all():
            return self
        sidx = np.repeat(np.arange(len(self.labels), dtype=np.int64), np.diff(self.starts))[keep]
        counts = np.bincount(sidx, minlength=len(self.labels))
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Selection(self.labels, self.ts[keep], self.values[keep], starts, self.mint, self.maxt)


def sql_string(s: str) -> str:
    """A ClickHouse string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _condition(m: Matcher) -> str:
    col = "metric" if m.name == "__name__" else f"labels[{sql_string(m.name)}]"
    if m.op == "=":
        return f"{col} = {sql_string(m.value)}"
    if m.op == "!=":
        return f"{col} != {sql_string(m.value)}"
    # Prometheus 3 anchors regexes and lets `.` match newlines.
    expr = f"match({col}, {sql_string('(?s)^(?:' + m.value + ')$')})"
    return expr if m.op == "=~" else f"NOT {expr}"


def where_clause(groups: list[list[Matcher]]) -> str:
    parts = []
    for group in groups:
        conds = [_condition(m) for m in group] or ["1"]
        parts.append("(" + " AND ".join(conds) + ")")
    return " OR ".join(parts) or "1"


def select(storage: Storage, groups: list[list[Matcher]], mint: int, maxt: int,
           max_samples: int | None = None, head: Head | None = None) -> Selection:
    """Series matching any matcher group (each group ANDed) with samples in [mint, maxt].

    With a `head` that covers the range, no SQL runs; a range that starts before the head's
    coverage reads the older part from storage and the rest from the head."""
    if head is not None:
        sel = _from_head(head, groups, mint, maxt, max_samples)
        if sel is not None:
            return sel
        cov = head.coverage_start
        if cov is not None and mint < cov <= maxt:
            old = select_storage(storage, groups, mint, cov - 1, max_samples)
            budget = None if max_samples is None else max_samples - len(old.ts)
            new = _from_head(head, groups, cov, maxt, budget)
            if new is not None:
                return _concat(old, new, mint, maxt)
    return select_storage(storage, groups, mint, maxt, max_samples)


def _too_many() -> QueryError:
    return QueryError("query processing would load too many samples into memory in query execution",
                      "execution")


def _from_head(head: Head, groups: list[list[Matcher]], mint: int, maxt: int,
               max_samples: int | None) -> Selection | None:
    try:
        got = head.select(groups, mint, maxt, max_samples)
    except SampleLimit:
        raise _too_many() from None
    if got is None:
        return None
    labels, ts, values, starts = got
    return Selection(labels, ts, values, starts, mint, maxt)


def _concat(old: Selection, new: Selection, mint: int, maxt: int) -> Selection:
    """Per-series concatenation of two selections over disjoint, consecutive time ranges.

    Both are sorted by (series, ts) and every `old` sample precedes every `new` one, so each
    sample's place is computed directly (no sort)."""
    if not old.labels:
        return Selection(new.labels, new.ts, new.values, new.starts, mint, maxt)
    if not new.labels:
        return Selection(old.labels, old.ts, old.values, old.starts, mint, maxt)
    labels = sorted(set(old.labels) | set(new.labels))
    rank = {lb: i for i, lb in enumerate(labels)}
    n = len(labels)
    if len(set(old.labels)) != len(old.labels) or len(set(new.labels)) != len(new.labels):
        # a label set repeated (two stored ids with the same non-empty labels): merge by sorting
        return _concat_sorted(old, new, labels, rank, mint, maxt)
    old_at = np.fromiter((rank[lb] for lb in old.labels), np.int64, len(old.labels))
    new_at = np.fromiter((rank[lb] for lb in new.labels), np.int64, len(new.labels))
    old_n, new_n = np.diff(old.starts), np.diff(new.starts)
    c_old, c_new = np.zeros(n, np.int64), np.zeros(n, np.int64)
    c_old[old_at], c_new[new_at] = old_n, new_n
    starts = np.zeros(n + 1, np.int64)
    np.cumsum(c_old + c_new, out=starts[1:])
    # destination of sample j of old series i: starts[rank] + (j - old.starts[i]); new ones after
    dst_old = np.arange(len(old.ts), dtype=np.int64) + np.repeat(starts[old_at] - old.starts[:-1], old_n)
    dst_new = np.arange(len(new.ts), dtype=np.int64) + np.repeat(
        starts[new_at] + c_old[new_at] - new.starts[:-1], new_n)
    ts = np.empty(int(starts[-1]), np.int64)
    values = np.empty(int(starts[-1]), np.float64)
    ts[dst_old], ts[dst_new] = old.ts, new.ts
    values[dst_old], values[dst_new] = old.values, new.values
    return Selection(labels, ts, values, starts, mint, maxt)


def _concat_sorted(old: Selection, new: Selection, labels: list[Labels], rank: dict[Labels, int],
                   mint: int, maxt: int) -> Selection:
    sidx = np.concatenate([
        np.repeat(np.asarray([rank[lb] for lb in old.labels], np.int64), np.diff(old.starts)),
        np.repeat(np.asarray([rank[lb] for lb in new.labels], np.int64), np.diff(new.starts))])
    order = np.argsort(sidx, kind="stable")  # old samples precede new ones within a series
    starts = np.zeros(len(labels) + 1, np.int64)
    np.cumsum(np.bincount(sidx, minlength=len(labels)), out=starts[1:])
    return Selection(labels, np.concatenate([old.ts, new.ts])[order],
                     np.concatenate([old.values, new.values])[order], starts, mint, maxt)


def select_storage(storage: Storage, groups: list[list[Matcher]], mint: int, maxt: int,
                   max_samples: int | None = None) -> Selection:
    """`select` from storage only (SQL): the series index table, then the samples."""
    db = storage.database
    where = where_clause(groups)
    series = storage.execute(
        f"SELECT series_id, any(labels) AS lbls FROM `{db}`.metric_series WHERE {where} "
        "GROUP BY series_id ORDER BY series_id")
    if series.num_rows == 0:
        return Selection([], np.empty(0, np.int64), np.empty(0), np.zeros(1, np.int64), mint, maxt)
    sids = series.column("series_id").to_numpy().astype(np.uint64)
    samples = storage.execute(
        f"SELECT series_id, ts, value FROM `{db}`.metric_samples "
        f"WHERE series_id IN (SELECT series_id FROM `{db}`.metric_series WHERE {where}) "
        f"AND ts >= {int(mint)} AND ts <= {int(maxt)} ORDER BY series_id, ts")
    if max_samples is not None and samples.num_rows > max_samples:
        raise _too_many()
    s_id = samples.column("series_id").to_numpy().astype(np.uint64)
    ts = samples.column("ts").to_numpy().astype(np.int64)
    vals = samples.column("value").to_numpy().astype(np.float64)
    sidx = np.searchsorted(sids, s_id)
    if len(ts) > 1:  # duplicate (series, ts) rows: keep the last written
        dup = (sidx[1:] == sidx[:-1]) & (ts[1:] == ts[:-1])
        if dup.any():
            keep = np.concatenate([~dup, [True]])
            sidx, ts, vals = sidx[keep], ts[keep], vals[keep]
    labels = [tuple(sorted((k, v) for k, v in row if v != ""))
              for row in series.column("lbls").to_pylist()]
    # Series in label order, as Prometheus' storage returns them (ties in topk, `or` order).
    order = sorted(range(len(labels)), key=labels.__getitem__)
    rank = np.empty(len(order), np.int64)
    rank[np.asarray(order, np.int64)] = np.arange(len(order))
    sidx = rank[sidx]
    if len(sidx) and (np.diff(sidx) < 0).any():
        o = np.lexsort((ts, sidx))
        sidx, ts, vals = sidx[o], ts[o], vals[o]
    labels = [labels[i] for i in order]
    counts = np.bincount(sidx, minlength=len(labels))
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Selection(labels, ts, vals, starts, mint, maxt)
