"""The head: the last `storage.head_window` of samples in memory, for PromQL and rules.

Prometheus answers recent data from its in-memory head block; this is Heron's equivalent. Every
acknowledged write lands here (`MetricsWriter` feeds it right after the pipeline's fsync), and at
start the last window is loaded from storage in one read, so a query whose range lies inside
the head's coverage needs no SQL at all: matchers resolve on `HeadIndex`, samples come from two
numpy arrays.

Layout (no per-sample Python anywhere):
- a sorted *block*: `keys` (int64, `position << 42 | ts`, sorted, unique) and `values`; the
  samples of series p in [mint, maxt] are one `np.searchsorted` pair away;
- an unsorted *tail* of the chunks written since the last compaction (write order);
- a compaction (background thread, when the tail is large or 30 s old) sorts the tail,
  merges it into the block in O(n) (a duplicate (series, ts): the later write wins, as the
  storage read keeps the last row), and evicts samples older than the window.
Readers take the current immutable `_State` and never lock; writers and the compactor swap
states under a lock. Memory: 16 bytes per sample in the block, 24 in the tail, twice the block
for the moment of a compaction, plus the index (~100-300 bytes per series). `max_samples`
bounds it: past the cap the oldest samples go and the coverage start moves forward.

*Coverage*: the head claims every sample with ts >= `coverage_start` (None before the start-up
load). Whatever it drops (too old on arrival, evicted, capped) moves that start forward, so a
query over [mint, maxt] is answered here only if mint >= coverage_start; older ranges go to
storage (`promql.fetch` splits a range that straddles the start).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from heron.metrics.head_index import HeadIndex
from heron.metrics.model import Labels

if TYPE_CHECKING:
    from heron.storage.base import Storage

log = logging.getLogger("heron.head")

KEY_SHIFT = 42
TS_LIMIT = 1 << KEY_SHIFT  # timestamps at or after 2109 stay in storage
TS_MASK = TS_LIMIT - 1
MAX_SERIES = 1 << (63 - KEY_SHIFT)
EVERYTHING = -(2**62)
_EMPTY_I = np.empty(0, np.int64)
_EMPTY_F = np.empty(0, np.float64)


class SampleLimit(Exception):
    """A selection would hold more samples than the caller allows."""


@dataclass
class _State:
    keys: np.ndarray
    values: np.ndarray
    tail: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]  # (position, ts, value) chunks
    tail_n: int
    coverage: int | None
    _tail_cat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def tail_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tail as three flat arrays in write order (computed once per state)."""
        cat = self._tail_cat
        if cat is None:
            if not self.tail:
                cat = (_EMPTY_I, _EMPTY_I, _EMPTY_F)
            else:
                cat = (np.concatenate([c[0] for c in self.tail]), np.concatenate([c[1] for c in self.tail]),
                       np.concatenate([c[2] for c in self.tail]))
            self._tail_cat = cat
        return cat


def _sorted_unique(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by key (stable) and keep the last of equal keys: the later write wins."""
    if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        last = np.ones(len(keys), bool)
        last[:-1] = keys[1:] != keys[:-1]
        if not last.all():
            keys, values = keys[last], values[last]
    return keys, values


def _merge(keys: np.ndarray, values: np.ndarray, nk: np.ndarray,
           nv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique (`nk`, `nv`) merged into the block; new values replace equal keys. New arrays."""
    if len(nk) == 0:
        return keys, values
    if len(keys) == 0:
        return nk, nv
    at = np.searchsorted(keys, nk)
    hit = at < len(keys)
    hit[hit] = keys[at[hit]] == nk[hit]
    new = ~hit
    out_k = np.insert(keys, at[new], nk[new])
    out_v = np.insert(values, at[new], nv[new])
    if hit.any():  # equal keys: their slot moved right by the insertions before it
        ins = at[new]
        slot = at[hit] + np.searchsorted(ins, at[hit], side="right")
        out_v[slot] = nv[hit]
    return out_k, out_v


class Head:
    """Recent samples in memory (see module docstring). One writer at a time, many readers."""

    def __init__(self, window_ms: int, max_samples: int = 25_000_000, storage: Storage | None = None,
                 tail_limit: int = 262_144, compact_every: float = 5.0) -> None:
        self.window_ms = int(window_ms)
        self.max_samples = int(max_samples)
        self.tail_limit = tail_limit
        self.compact_every = compact_every
        self.storage = storage
        self.index = HeadIndex(self._sql_regex if storage is not None else None)
        self._state = _State(_EMPTY_I, _EMPTY_F, (), 0, None)
        self._min_cover = EVERYTHING  # everything dropped so far is older than this
        self._write_lock = threading.Lock()
        self._compact_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._compacted_at = time.monotonic()
        self._evicted_to = EVERYTHING  # the cutoff of the last eviction pass
        self.disabled: str | None = None

    # --- state ---------------------------------------------------------------------------------

    @property
    def coverage_start(self) -> int | None:
        """Milliseconds from which the head holds every sample; None while it holds no claim."""
        return self._state.coverage

    def covers(self, mint: int, maxt: int) -> bool:
        cov = self._state.coverage
        return cov is not None and mint >= cov and maxt < TS_LIMIT

    def __len__(self) -> int:
        st = self._state
        return len(st.keys) + st.tail_n

    def stats(self) -> dict[str, Any]:
        st = self._state
        series, pairs = self.index.stats()
        return {"samples": len(st.keys) + st.tail_n, "tail": st.tail_n, "series": series,
                "label_pairs": pairs, "coverage_start": st.coverage,
                "bytes": st.keys.nbytes + st.values.nbytes + 24 * st.tail_n}

    def register_metrics(self, registry: Any) -> None:
        """`heron_head_*` gauges on a prometheus_client registry (read at scrape time)."""
        from prometheus_client import Gauge

        Gauge("heron_head_samples", "Samples held in the in-memory head.",
              registry=registry).set_function(lambda: len(self))
        Gauge("heron_head_series", "Series known to the head's index.",
              registry=registry).set_function(lambda: len(self.index))
        Gauge("heron_head_coverage_start_seconds",
              "Time from which the head holds every sample (queries from then on skip storage).",
              registry=registry).set_function(self._coverage_seconds)

    def _coverage_seconds(self) -> float:
        """The gauge's value: NaN before the load (no claim), 0 when the head holds everything."""
        cov = self._state.coverage
        return float("nan") if cov is None else max(cov, 0) / 1000

    def _now_ms(self) -> int:
        return int(time.time() * 1000)

    def _raise_cover(self, t: int) -> None:
        """Nothing before `t` is complete here any more (caller holds the write lock)."""
        if t > self._min_cover:
            self._min_cover = t
            st = self._state
            if st.coverage is not None and st.coverage < t:
                self._state = _State(st.keys, st.values, st.tail, st.tail_n, t, st._tail_cat)

    def disable(self, reason: str) -> None:
        with self._write_lock:
            if self.disabled is None:
                log.warning("in-memory head disabled: %s; queries read storage", reason)
            self.disabled = reason
            self._state = _State(_EMPTY_I, _EMPTY_F, (), 0, None)

    # --- writing -------------------------------------------------------------------------------

    def append(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray, ts: np.ndarray,
               values: np.ndarray) -> None:
        """Add acknowledged samples: `series[i]` repeated `counts[i]` times over flat ts/values."""
        if self.disabled is not None or len(ts) == 0:
            return
        ts = np.array(ts, np.int64)  # copies: the caller's buffers are not ours to keep
        values = np.array(values, np.float64)
        if len(self.index) + len(series) > MAX_SERIES:  # keys hold 21 bits of position
            self.disable(f"more than {MAX_SERIES} series")
            return
        with self._write_lock:
            pos = self.index.positions(series)
            pos = np.repeat(pos, np.asarray(counts, np.int64))
            floor = self._now_ms() - self.window_ms
            keep = (ts >= floor) & (ts < TS_LIMIT)
            if not keep.all():
                old = ts[ts < floor]
                if len(old):
                    self._raise_cover(int(old.max()) + 1)
                pos, ts, values = pos[keep], ts[keep], values[keep]
            if len(ts) == 0:
                return
            st = self._state
            self._state = _State(st.keys, st.values, (*st.tail, (pos, ts, values)), st.tail_n + len(ts),
                                 st.coverage)
            full = self._state.tail_n >= self.tail_limit
        self._ensure_thread()
        if full:
            self._wake.set()

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            with self._thread_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="heron-head-compact", daemon=True)
                    self._thread.start()

    def _due(self) -> bool:
        """A compaction copies the whole block: run it when the tail is large, when a small tail
        has waited `compact_every` x 6, or when a 32nd of the window is ready to be evicted."""
        st, now = self._state, time.monotonic()
        if st.tail_n >= self.tail_limit or (st.tail_n and now - self._compacted_at >= 6 * self.compact_every):
            return True
        return self._now_ms() - self.window_ms - self._evicted_to >= self.window_ms // 32

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.compact_every)
            self._wake.clear()
            if self._closed:
                break
            try:
                if self._due():
                    self.compact()
            except Exception:  # never let the compactor die silently: queries would slow down
                log.exception("head compaction failed")

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def compact(self, now_ms: int | None = None) -> None:
        """Merge the tail into the block, evict what left the window, enforce the sample cap."""
        with self._compact_lock:
            st = self._state
            k = len(st.tail)
            keys, values = st.keys, st.values
            if k:
                pos, ts, vals = st.tail_arrays()
                nk, nv = _sorted_unique((pos << KEY_SHIFT) | ts, vals)
                keys, values = _merge(keys, values, nk, nv)
            cutoff = (now_ms if now_ms is not None else self._now_ms()) - self.window_ms
            if len(keys):
                ts_all = keys & TS_MASK
                if len(keys) > self.max_samples:  # the oldest go first: the window shrinks
                    cap = int(np.partition(ts_all, len(keys) - self.max_samples)[len(keys) - self.max_samples])
                    cutoff = max(cutoff, cap + 1)
                old = ts_all < cutoff
                evicted = bool(old.any())
                if evicted:
                    keys, values = keys[~old], values[~old]
            else:
                evicted = False
            self._compacted_at, self._evicted_to = time.monotonic(), cutoff
            with self._write_lock:
                cur = self._state
                self._state = _State(keys, values, cur.tail[k:], cur.tail_n - st.tail_n, cur.coverage)
                if evicted:  # nothing older than the cutoff is here any more
                    self._raise_cover(cutoff)

    # --- start-up ------------------------------------------------------------------------------

    def load(self, storage: Storage, now_ms: int | None = None, chunk_rows: int = 1_000_000) -> int:
        """Read the last window from storage, then claim coverage. Returns the samples loaded.

        One query for the series, then the samples in slices of the series-id space (about
        `chunk_rows` each, every slice one primary-key range), so the transient memory of the
        read stays a fraction of the head's own."""
        if self.disabled is not None:
            return 0
        db = storage.database
        cutoff = (now_ms if now_ms is not None else self._now_ms()) - self.window_ms
        with self._compact_lock:
            oldest = storage.execute(f"SELECT count() AS n, min(ts) AS lo FROM `{db}`.metric_samples")
            row: dict[str, Any] = oldest.to_pylist()[0] if oldest.num_rows else {"n": 0, "lo": 0}
            complete = not row["n"] or int(row["lo"]) >= cutoff
            series = storage.execute(
                f"SELECT series_id, any(labels) AS lbls FROM `{db}`.metric_series WHERE series_id IN "
                f"(SELECT DISTINCT series_id FROM `{db}`.metric_samples WHERE ts >= {cutoff}) "
                "GROUP BY series_id ORDER BY series_id")
            sids = series.column("series_id").to_numpy().astype(np.uint64) if series.num_rows else \
                np.empty(0, np.uint64)
            labels = [tuple(sorted(row)) for row in series.column("lbls").to_pylist()] if series.num_rows else []
            del series
            if len(labels) > MAX_SERIES:
                self.disable(f"more than {MAX_SERIES} series in the window")
                return 0
            with self._write_lock:
                pos = self.index.positions(labels)
            slices = max(1, min(64, int(row["n"] or 0) // chunk_rows))
            bounds = [k * (1 << 64) // slices for k in range(slices + 1)]
            key_parts, value_parts = [], []
            for lo, hi in itertools.pairwise(bounds):
                upper = f" AND series_id < {hi}" if hi < (1 << 64) else ""
                part = storage.execute(
                    f"SELECT series_id, ts, value FROM `{db}`.metric_samples WHERE series_id >= {lo}{upper} "
                    f"AND ts >= {cutoff} AND ts < {TS_LIMIT} ORDER BY series_id, ts")
                if not part.num_rows:
                    continue
                s_id = part.column("series_id").to_numpy()
                at = np.searchsorted(sids, s_id)
                known = at < len(sids)
                known[known] = sids[at[known]] == s_id[known]  # a sample without a series row: unreadable
                key_parts.append((pos[at[known]] << KEY_SHIFT) | part.column("ts").to_numpy()[known])
                value_parts.append(part.column("value").to_numpy()[known])
                del part, s_id, at, known
            keys = np.concatenate(key_parts) if key_parts else _EMPTY_I
            values = np.concatenate(value_parts).astype(np.float64) if value_parts else _EMPTY_F
            del key_parts, value_parts
            keys, values = _sorted_unique(keys, values)
            with self._write_lock:
                if self.disabled is not None:
                    return 0
                cur = self._state
                # What was written while we read is newer than the storage copy: it wins.
                keys, values = _merge(keys, values, cur.keys, cur.values)
                cov = max(EVERYTHING if complete else cutoff, self._min_cover)
                self._state = _State(keys, values, cur.tail, cur.tail_n, cov)
        if len(keys) > self.max_samples:  # the cap holds from the start, not at the first compaction
            self.compact(now_ms)
        log.info("head: loaded %d samples of %d series (coverage from %s)", len(self), len(labels),
                 "the beginning" if complete and len(keys) <= self.max_samples else self.coverage_start)
        return len(keys)

    # --- reading -------------------------------------------------------------------------------

    def _find(self, groups: list[list[Any]], mint: int, maxt: int) -> tuple[
            _State, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Matched positions (label order), their block ranges, and the tail's matching samples."""
        st = self._state
        if st.coverage is None or mint < st.coverage or maxt >= TS_LIMIT or maxt < mint:
            return None
        pos = self.index.resolve([[tuple(m) for m in g] for g in groups])
        if pos is None:
            return None
        pk = pos << KEY_SHIFT
        lo = np.searchsorted(st.keys, pk + max(int(mint), 0), "left")
        counts = np.searchsorted(st.keys, pk + int(maxt), "right") - lo
        t_pos, t_ts, t_val = st.tail_arrays()
        t_sel = _EMPTY_I
        if len(t_pos) and len(pos):
            sel_of = np.full(len(self.index) + 1, -1, np.int64)
            sel_of[pos] = np.arange(len(pos), dtype=np.int64)
            t_sel = np.where((t_ts >= mint) & (t_ts <= maxt), sel_of[t_pos], -1)
            hit = t_sel >= 0
            t_sel, t_ts, t_val = t_sel[hit], t_ts[hit], t_val[hit]
        return st, pos, lo, counts, t_sel, t_ts, t_val

    def series(self, groups: list[list[Any]], mint: int, maxt: int) -> list[Labels] | None:
        """Label sets of the matching series with a sample in [mint, maxt], in label order; None
        when the range is not covered. `[[]]` matches every series."""
        found = self._find(groups, mint, maxt)
        if found is None:
            return None
        _, pos, _, counts, t_sel, _, _ = found
        has = counts > 0
        has[t_sel] = True
        labels = self.index.labels
        return [labels[p] for p in pos[has].tolist()]

    def select(self, groups: list[list[Any]], mint: int, maxt: int, limit: int | None = None
               ) -> tuple[list[Labels], np.ndarray, np.ndarray, np.ndarray] | None:
        """Series matching `groups` with their samples in [mint, maxt], in label-set order, as
        (labels, ts, values, starts) flat arrays sorted by (series, ts); series without samples
        in the range are left out. None when the range is not covered (read storage instead).
        Raises SampleLimit past `limit` samples."""
        found = self._find(groups, mint, maxt)
        if found is None:
            return None
        st, pos, lo, counts, t_sel, t_ts, t_val = found
        total = int(counts.sum()) + len(t_sel)
        if limit is not None and total > limit:
            raise SampleLimit(total)
        starts_b = np.cumsum(counts) - counts
        idx = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(lo - starts_b, counts)
        ts = st.keys[idx] & TS_MASK
        vals = st.values[idx]
        if len(t_sel):  # merge the tail's matches; the later write wins on equal (series, ts)
            sidx = np.concatenate([np.repeat(np.arange(len(pos), dtype=np.int64), counts), t_sel])
            ts = np.concatenate([ts, t_ts])
            vals = np.concatenate([vals, t_val])
            order = np.lexsort((ts, sidx))
            sidx, ts, vals = sidx[order], ts[order], vals[order]
            last = np.ones(len(ts), bool)
            last[:-1] = (sidx[1:] != sidx[:-1]) | (ts[1:] != ts[:-1])
            if not last.all():
                sidx, ts, vals = sidx[last], ts[last], vals[last]
            counts = np.bincount(sidx, minlength=len(pos))
        nz = counts > 0
        labels = self.index.labels
        out_labels = [labels[p] for p in pos[nz].tolist()]
        starts = np.zeros(len(out_labels) + 1, np.int64)
        np.cumsum(counts[nz], out=starts[1:])
        return out_labels, ts, vals, starts

    def _sql_regex(self, op: str, pattern: str, values: list[str]) -> list[bool]:
        """RE2's verdict (ClickHouse `match`, as the SQL path uses) for values Python cannot judge."""
        from heron.promql.fetch import sql_string  # the SQL path's quoting, so the same regex runs

        assert self.storage is not None
        rx = sql_string("(?s)^(?:" + pattern + ")$")
        t = self.storage.execute(f"SELECT arrayMap(x -> match(x, {rx}), [{', '.join(map(sql_string, values))}]) "
                                 "AS m")
        return [bool(x) for x in t.column("m")[0].as_py()]
