"""The head: the last `storage.head_window` of samples in memory, for PromQL and rules.

Prometheus answers recent data from its in-memory head block; this is Heron's equivalent. Every
acknowledged write lands here (`MetricsWriter` feeds it right after the pipeline's fsync), and at
start the last window is loaded from storage in slices, so a query whose range lies inside the
head's coverage needs no SQL at all: matchers resolve on `HeadIndex`, samples come from numpy
arrays.

Layout (no per-sample Python anywhere):
- a *block* in CSR form: per series position p, its samples are `ts[offsets[p]:offsets[p+1]]`
  (sorted, unique) and the same slice of `values`. Timestamps are stored as offsets from the
  block's `base` (int32 when the window fits in 2^30 ms, else int64), so a sample costs 12 bytes
  instead of 16; values stay float64, bit for bit. A series' window bounds are found by
  interpolation (exact for regular scrapes) checked and, where wrong, corrected by a binary
  search run for all series at once;
- an unsorted *tail* of the chunks written since the last compaction (write order);
- a compaction (background thread, when the tail is large or 30 s old) sorts the tail,
  merges it into the block in O(n) (a duplicate (series, ts): the later write wins, as the
  storage read keeps the last row), and evicts samples older than the window.
Readers take the current immutable `_State` and never lock; writers and the compactor swap
states under a lock. Memory: 12 bytes per sample in the block, 24 in the tail, twice the block
for the moment of a compaction, plus the index (~100-300 bytes per series). `max_samples`
bounds it (default: a tenth of the machine's memory): past the cap the oldest samples go and
the coverage start moves forward.

*Coverage*: the head claims every sample with `coverage_start` <= ts < `ts_limit` (None before
the start-up load). Whatever it drops (too old on arrival, evicted, capped) moves that start
forward, so a query over [mint, maxt] is answered here only if mint >= coverage_start; older
ranges go to storage (`promql.fetch` splits a range that straddles the start).
"""

from __future__ import annotations

import atexit
import collections
import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from heron.metrics.head_index import HeadIndex
from heron.metrics.model import Labels

if TYPE_CHECKING:
    from heron.storage.base import Storage

log = logging.getLogger("heron.head")

KEY_SHIFT = 42  # tail sort keys: position << 42 | ts
TS_LIMIT = 1 << KEY_SHIFT  # timestamps at or after 2109 stay in storage
TS_MASK = TS_LIMIT - 1
MAX_SERIES = 1 << (63 - KEY_SHIFT)
EVERYTHING = -(2**62)
OFFSET_SPAN = 1 << 30  # int32 offsets: the block's samples stay within base .. base + 2^31
BYTES_PER_SAMPLE = 12
WRITE_LOG = 4096  # appends remembered by written_since (~1 h of 1 s writes)
_EMPTY_I = np.empty(0, np.int64)
_EMPTY_F = np.empty(0, np.float64)


class SampleLimit(Exception):
    """A selection would hold more samples than the caller allows."""


def machine_memory() -> int:
    """Bytes of memory this process may use: the cgroup limit when lower than physical RAM."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_max_samples() -> int:
    """A tenth of the machine's memory at 12 bytes per sample (at least 1M)."""
    return max(1_000_000, machine_memory() // 10 // BYTES_PER_SAMPLE)


@dataclass
class _State:
    offsets: np.ndarray  # int64 (n_seg + 1,): series position p's samples are [offsets[p], offsets[p+1])
    ts: np.ndarray  # int32 (or int64) ms - base, sorted within each series
    values: np.ndarray  # float64
    base: int
    tail: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]  # (position, ts, value) chunks
    tail_n: int
    coverage: int | None
    limit: int  # samples at or after this are not held (int32 span, far-future arrivals)
    _tail_cat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.ts)

    def with_(self, **kw: Any) -> _State:
        d = {k: getattr(self, k) for k in ("offsets", "ts", "values", "base", "tail", "tail_n", "coverage",
                                            "limit")}
        d.update(kw)
        return _State(**d)

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

    def segments(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) of every position's block segment (empty for positions past the block)."""
        nseg = len(self.offsets) - 1
        p = np.minimum(pos, nseg)
        lo = self.offsets[p]
        hi = self.offsets[np.minimum(pos + 1, nseg)]
        return lo, np.maximum(hi, lo)


def seg_search(arr: np.ndarray, lo: np.ndarray, hi: np.ndarray, target: np.ndarray | int,
               right: bool = False) -> np.ndarray:
    """Per segment [lo, hi) of sorted `arr`: the first index whose value is >= target (> with
    `right`), for all segments at once. Interpolation first (exact for evenly spaced samples),
    then a vectorized binary search over the segments it missed."""
    lo = np.asarray(lo, np.int64)
    hi = np.asarray(hi, np.int64)
    t = np.broadcast_to(np.asarray(target, np.int64), lo.shape)
    out = lo.copy()
    n = hi - lo
    nz = np.flatnonzero(n > 0)
    if not len(nz):
        return out
    a_lo, a_hi, tt = lo[nz], hi[nz], t[nz]
    first = arr[a_lo].astype(np.int64)
    last = arr[a_hi - 1].astype(np.int64)
    span = np.maximum(last - first, 1)
    rel = np.clip(tt, first, last + 1) - first
    if arr.dtype == np.int32:  # exact integer interpolation (< 2^31 x samples: no overflow)
        rel *= a_hi - 1 - a_lo
        step = rel // span + 1 if right else (rel + span - 1) // span
    else:  # wide offsets: a float guess, checked below like any other
        f = rel / span * (a_hi - 1 - a_lo)
        step = (np.floor(f) + 1 if right else np.ceil(f)).astype(np.int64)
    guess = a_lo + np.minimum(step, a_hi - a_lo)
    gm = np.minimum(guess, a_hi - 1)
    before, at = arr[np.maximum(guess - 1, a_lo)].astype(np.int64), arr[gm].astype(np.int64)
    if right:
        ok_left, ok_right = (guess == a_lo) | (before <= tt), (guess == a_hi) | (at > tt)
    else:
        ok_left, ok_right = (guess == a_lo) | (before < tt), (guess == a_hi) | (at >= tt)
    ok = ok_left & ok_right
    out[nz[ok]] = guess[ok]
    miss = np.flatnonzero(~ok)
    if len(miss):
        a_lo, a_hi, tt = a_lo[miss].copy(), a_hi[miss].copy(), tt[miss]
        idx = nz[miss]
        act = np.arange(len(a_lo))
        while len(act):
            la, ha = a_lo[act], a_hi[act]
            mid = (la + ha) >> 1
            go = arr[mid] <= tt[act] if right else arr[mid] < tt[act]
            a_lo[act] = np.where(go, mid + 1, la)
            a_hi[act] = np.where(go, ha, mid)
            act = act[a_lo[act] < a_hi[act]]
        out[idx] = a_lo
    return out


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


def _merge(st: _State, pos: np.ndarray, off: np.ndarray, vals: np.ndarray, base: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The block of `st` (re-based on `base`) with sorted unique samples (`pos`, `off`, `vals`)
    merged in; new values replace equal (series, ts). Returns new (offsets, ts, values)."""
    dtype = st.ts.dtype
    ts = st.ts if base == st.base else (st.ts - np.asarray(base - st.base, dtype)).astype(dtype, copy=False)
    nseg = max(len(st.offsets) - 1, int(pos.max()) + 1 if len(pos) else 0)
    offsets = np.concatenate([st.offsets, np.full(nseg + 1 - len(st.offsets), st.offsets[-1], np.int64)])
    if not len(pos):
        return offsets, ts.copy() if ts is st.ts else ts, st.values.copy()
    lo, hi = offsets[pos], offsets[pos + 1]
    at = seg_search(ts, lo, hi, off)
    hit = at < hi
    hit[hit] = ts[at[hit]] == off[hit]
    new = ~hit
    ins = at[new]
    out_t = np.insert(ts, ins, off[new].astype(dtype))
    out_v = np.insert(st.values, ins, vals[new])
    if hit.any():  # equal keys: their slot moved right by the insertions before it
        slot = at[hit] + np.searchsorted(ins, at[hit], side="right")
        out_v[slot] = vals[hit]
    added = np.bincount(pos[new], minlength=nseg)
    out_o = offsets.copy()
    out_o[1:] += np.cumsum(added)
    return out_o, out_t, out_v


class Head:
    """Recent samples in memory (see module docstring). One writer at a time, many readers."""

    def __init__(self, window_ms: int, max_samples: int | None = None, storage: Storage | None = None,
                 tail_limit: int = 262_144, compact_every: float = 5.0) -> None:
        self.window_ms = int(window_ms)
        self.max_samples = int(max_samples) if max_samples else default_max_samples()
        self.tail_limit = tail_limit
        self.compact_every = compact_every
        self.storage = storage
        self.index = HeadIndex(self._sql_regex if storage is not None else None)
        self._dtype = np.int32 if self.window_ms <= OFFSET_SPAN else np.int64
        self._state = self._empty(None)
        self._min_cover = EVERYTHING  # everything dropped so far is older than this
        self._max_cover = TS_LIMIT  # and newer than this (far-future samples)
        self._write_lock = threading.Lock()
        self._compact_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._froze = False  # load() froze the GC's view of the index (see close())
        self._compacted_at = time.monotonic()
        self._evicted_to = EVERYTHING  # the cutoff of the last eviction pass
        self.disabled: str | None = None
        # Write log for result caches (heron.promql.stepcache): `writes` counts accepted appends and
        # loads; `_lows` keeps (count, lowest ts) of the recent ones, so `written_since` can say
        # which steps a cached result may no longer match.
        self.writes = 0
        self._lows: collections.deque[tuple[int, int]] = collections.deque(maxlen=WRITE_LOG)

    def _empty(self, coverage: int | None, base: int | None = None) -> _State:
        base = self._now_ms() - self.window_ms if base is None else base
        return _State(np.zeros(1, np.int64), np.empty(0, self._dtype), _EMPTY_F, base, (), 0, coverage,
                      self._limit_for(base))

    def _limit_for(self, base: int) -> int:
        span = TS_LIMIT if self._dtype is np.int64 else base + 2 * OFFSET_SPAN
        return min(span, TS_LIMIT, getattr(self, "_max_cover", TS_LIMIT))

    # --- state ---------------------------------------------------------------------------------

    @property
    def coverage_start(self) -> int | None:
        """Milliseconds from which the head holds every sample; None while it holds no claim."""
        return self._state.coverage

    def covers(self, mint: int, maxt: int) -> bool:
        st = self._state
        return st.coverage is not None and mint >= st.coverage and maxt < st.limit

    def __len__(self) -> int:
        st = self._state
        return st.n + st.tail_n

    def stats(self) -> dict[str, Any]:
        st = self._state
        series, pairs = self.index.stats()
        return {"samples": st.n + st.tail_n, "tail": st.tail_n, "series": series,
                "label_pairs": pairs, "coverage_start": st.coverage, "max_samples": self.max_samples,
                "bytes": st.ts.nbytes + st.values.nbytes + st.offsets.nbytes + 24 * st.tail_n}

    def tsdb_stats(self, limit: int = 10) -> dict[str, Any] | None:
        """/api/v1/status/tsdb from memory, as Prometheus reports its head; None before the load."""
        st = self._state
        if st.coverage is None:
            return None
        seg = np.flatnonzero(np.diff(st.offsets) > 0)
        lo = [int(st.ts[st.offsets[seg]].min()) + st.base] if len(seg) else []
        hi = [int(st.ts[st.offsets[seg + 1] - 1].max()) + st.base] if len(seg) else []
        _, t_ts, _ = st.tail_arrays()
        if len(t_ts):
            lo.append(int(t_ts.min()))
            hi.append(int(t_ts.max()))
        card = self.index.cardinality(limit)
        n = st.n + st.tail_n
        head = {"numSeries": len(self.index), "numLabelPairs": card.pop("numLabelPairs"),
                "chunkCount": -(-n // 120),
                "minTime": min(lo) if lo else int(np.iinfo(np.int64).max),
                "maxTime": max(hi) if hi else int(np.iinfo(np.int64).min)}
        return {"headStats": head, **card}

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
        Gauge("heron_head_max_samples", "Cap on samples in the head (storage.head_max_samples).",
              registry=registry).set_function(lambda: self.max_samples)

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
                self._state = st.with_(coverage=t, _tail_cat=st._tail_cat)

    def _lower_limit(self, t: int) -> None:
        """Nothing at or after `t` is complete here (caller holds the write lock)."""
        if t < self._max_cover:
            self._max_cover = t
            st = self._state
            if st.limit > t:
                self._state = st.with_(limit=t, _tail_cat=st._tail_cat)

    def disable(self, reason: str) -> None:
        with self._write_lock:
            if self.disabled is None:
                log.warning("in-memory head disabled: %s; queries read storage", reason)
            self.disabled = reason
            self._note_write(EVERYTHING)
            self._state = self._empty(None)

    # --- writing -------------------------------------------------------------------------------

    def append(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray, ts: np.ndarray,
               values: np.ndarray, ids: Sequence[int] | np.ndarray | None = None, clean: bool = False) -> None:
        """Add acknowledged samples: `series[i]` repeated `counts[i]` times over flat ts/values.

        `ids`: the series ids (`model.series_id`) when the caller has them (the writer always
        does); the index finds series by id. `clean`: no set has an empty value (see
        `HeadIndex.positions`)."""
        if self.disabled is not None or len(ts) == 0:
            return
        ts = np.array(ts, np.int64)  # copies: the caller's buffers are not ours to keep
        values = np.array(values, np.float64)
        if len(self.index) + len(series) > MAX_SERIES:  # tail keys hold 21 bits of position
            self.disable(f"more than {MAX_SERIES} series")
            return
        with self._write_lock:
            pos = self.index.positions(series, ids, clean)
            pos = np.repeat(pos, np.asarray(counts, np.int64))
            st = self._state
            floor = max(self._now_ms() - self.window_ms, st.base)
            keep = (ts >= floor) & (ts < st.limit)
            if not keep.all():
                old = ts[ts < floor]
                if len(old):
                    self._raise_cover(int(old.max()) + 1)
                future = ts[ts >= st.limit]
                if len(future):
                    self._lower_limit(int(future.min()))
                pos, ts, values = pos[keep], ts[keep], values[keep]
            if len(ts) == 0:
                return
            st = self._state
            self._state = st.with_(tail=(*st.tail, (pos, ts, values)), tail_n=st.tail_n + len(ts))
            self._note_write(int(ts.min()))  # after the swap: a reader counting it sees the samples
            full = self._state.tail_n >= self.tail_limit
        self._ensure_thread()
        if full:
            self._wake.set()

    def _note_write(self, low: int) -> None:
        """Record a write whose lowest timestamp is `low` (caller holds the write lock)."""
        self.writes += 1
        self._lows.append((self.writes, low))

    def written_since(self, writes: int) -> int | None:
        """The lowest timestamp written after the first `writes` writes (None: nothing since);
        EVERYTHING when that is older than the log remembers."""
        lows = self._lows
        if writes >= self.writes:
            return None
        if not lows or lows[0][0] > writes + 1:
            return EVERYTHING
        return min(low for n, low in list(lows) if n > writes)

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            with self._thread_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="heron-head-compact", daemon=True)
                    self._thread.start()

    def _due(self) -> bool:
        """A compaction copies the whole block (51 M samples, 0.6 GB, at 100k series x 2 h): run
        it when the tail is large, when a small tail has waited `compact_every` x 6 and is at
        least a 64th of the block (merging it is cheap), when any tail has waited 120 x
        `compact_every`, or when a 32nd of the window is ready to be evicted. A small tail costs
        readers a filter and an O(n) merge, so it may wait."""
        st, now = self._state, time.monotonic()
        age = now - self._compacted_at
        if st.tail_n >= self.tail_limit or (st.tail_n and age >= 6 * self.compact_every and
                                            st.tail_n * 64 >= st.n) or (st.tail_n and age >= 120 * self.compact_every):
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
        if self._froze:
            # Frozen objects escape the interpreter's last collections; chDB's objects among them
            # would then be torn down by its C++ exit handlers instead, which crashed `heron up` on
            # stop (SIGSEGV after a load of 5k+ series). Hand them back before the process ends.
            gc.unfreeze()
            self._froze = False

    def _sorted_tail(self, st: _State, k: int, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first `k` tail chunks sorted by (position, ts), last write winning: (pos, ts - base, value)."""
        pos, ts, vals = (np.concatenate([c[i] for c in st.tail[:k]]) for i in range(3))
        keys, vals = _sorted_unique((pos << KEY_SHIFT) | ts, vals)
        return keys >> KEY_SHIFT, (keys & TS_MASK) - base, vals

    def compact(self, now_ms: int | None = None) -> None:
        """Merge the tail into the block, evict what left the window, enforce the sample cap."""
        with self._compact_lock:
            st = self._state
            k = len(st.tail)
            cutoff = (now_ms if now_ms is not None else self._now_ms()) - self.window_ms
            # Re-base when the int32 span runs short (every ~12 days of uptime).
            base = cutoff if self._dtype is np.int32 and cutoff - st.base > OFFSET_SPAN // 2 else st.base
            if k:
                offsets, ts, values = _merge(st, *self._sorted_tail(st, k, base), base)
            elif base != st.base:
                offsets, ts, values = _merge(st, _EMPTY_I, _EMPTY_I, _EMPTY_F, base)
            else:
                offsets, ts, values = st.offsets, st.ts, st.values
            evicted = False
            if len(ts):
                if len(ts) > self.max_samples:  # the oldest go first: the window shrinks
                    cap = int(np.partition(ts, len(ts) - self.max_samples)[len(ts) - self.max_samples])
                    cutoff = max(cutoff, base + cap + 1)
                offsets, ts, values, evicted = _evict(offsets, ts, values, cutoff - base)
            self._compacted_at, self._evicted_to = time.monotonic(), cutoff
            with self._write_lock:
                cur = self._state
                self._state = _State(offsets, ts, values, base, cur.tail[k:], cur.tail_n - st.tail_n,
                                     cur.coverage, self._limit_for(base))
                if evicted:  # nothing older than the cutoff is here any more
                    self._raise_cover(cutoff)

    # --- start-up ------------------------------------------------------------------------------

    def load(self, storage: Storage, now_ms: int | None = None, chunk_rows: int = 1_000_000) -> int:
        """Read the last window from storage, then claim coverage. Returns the samples loaded.

        Only what the sample cap keeps is read: a per-minute count finds the oldest minute that
        fits. One query for the series, then the samples in slices of the series-id space (about
        `chunk_rows` each, every slice one primary-key range), written straight into the block's
        arrays, so the transient memory of the read stays a slice."""
        if self.disabled is not None:
            return 0
        db = storage.database
        cutoff = (now_ms if now_ms is not None else self._now_ms()) - self.window_ms
        with self._compact_lock:
            base = cutoff
            upper = self._limit_for(base)
            row = storage.execute(
                f"SELECT count() AS n, min(ts) AS lo, countIf(ts >= {cutoff} AND ts < {upper}) AS w "
                f"FROM `{db}`.metric_samples").to_pylist()[0]
            complete = not row["n"] or int(row["lo"]) >= cutoff
            in_window = int(row.get("w") or 0)
            if in_window > self.max_samples:  # keep the newest minutes that fit
                cutoff = self._cap_cutoff(storage, cutoff, upper)
                complete = False
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
                pos = self.index.positions(labels, sids)
            offsets, ts, values = self._read_slices(storage, sids, pos, cutoff, upper, base,
                                                    min(in_window, self.max_samples), chunk_rows)
            loaded = len(ts)
            with self._write_lock:
                if self.disabled is not None:
                    return 0
                cur = self._state
                block = _State(offsets, ts, values, base, (), 0, None, upper)
                if cur.n:  # what was written while we read is newer than the storage copy: it wins
                    p = np.repeat(np.arange(len(cur.offsets) - 1, dtype=np.int64), np.diff(cur.offsets))
                    t = cur.ts.astype(np.int64) + cur.base
                    keep = (t >= base) & (t < upper)
                    offsets, ts, values = _merge(block, p[keep], t[keep] - base, cur.values[keep], base)
                cov = max(EVERYTHING if complete else cutoff, self._min_cover)
                self._state = _State(offsets, ts, values, base, cur.tail, cur.tail_n, cov,
                                     min(upper, self._max_cover))
                self._note_write(EVERYTHING)
        if len(ts) > self.max_samples:  # writes during the load can still push it past the cap
            self.compact(now_ms)
        log.info("head: loaded %d samples of %d series (coverage from %s)", loaded, len(labels),
                 "the beginning" if complete else self.coverage_start)
        # The index's label tuples (~10 objects per series) live as long as the process: out of
        # the collector's reach, a full collection no longer walks 1M objects at 100k series.
        # (Small heads, as in tests, are not worth pinning whatever else is alive now.)
        if len(self.index) >= 5_000:
            self.freeze_gc()
        return loaded

    def freeze_gc(self) -> None:
        """Move every object alive now out of the garbage collector's reach (`gc.freeze`), until
        `close()`. `heron up` calls it once started (server.py), with the runtime's ~110k
        long-lived objects (modules, functions, the app): otherwise every full collection walks
        them, ~45 ms holding the GIL, and new series trigger one per ~100k (in-process, 100k
        new series in 2000-series writes: GC 80-89 -> 9 ms, CPU 467-514 -> 372 ms).
        HERON_GC_FREEZE=0 turns it off (measurements)."""
        if os.environ.get("HERON_GC_FREEZE", "").strip() == "0" or self._closed:
            return
        gc.freeze()
        log.info("gc: %d objects frozen (out of the collector's reach until stop)", gc.get_freeze_count())
        if not self._froze:  # also at an exit that skips close() (a start that fails later)
            atexit.register(gc.unfreeze)
        self._froze = True

    def _cap_cutoff(self, storage: Storage, cutoff: int, upper: int) -> int:
        """The oldest minute from which the samples in [cutoff, upper) fit `max_samples`."""
        t = storage.execute(
            f"SELECT intDiv(ts, 60000) AS m, count() AS c FROM `{storage.database}`.metric_samples "
            f"WHERE ts >= {cutoff} AND ts < {upper} GROUP BY m ORDER BY m DESC")
        if not t.num_rows:
            return cutoff
        m = t.column("m").to_numpy().astype(np.int64)
        fits = np.cumsum(t.column("c").to_numpy().astype(np.int64)) <= self.max_samples
        if not fits[0]:  # even the newest minute is too much: keep it anyway, compaction caps it
            return max(cutoff, int(m[0]) * 60000)
        return max(cutoff, int(m[np.flatnonzero(fits)[-1]]) * 60000)

    def _read_slices(self, storage: Storage, sids: np.ndarray, pos: np.ndarray, cutoff: int, upper: int,
                     base: int, expect: int, chunk_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples in [cutoff, upper) into CSR arrays by position (see `load`)."""
        db = storage.database
        ts_out = np.empty(expect, self._dtype)
        val_out = np.empty(expect, np.float64)
        run_pos: list[np.ndarray] = []
        run_len: list[np.ndarray] = []
        n = 0
        slices = max(1, min(64, expect // chunk_rows))
        bounds = [k * (1 << 64) // slices for k in range(slices + 1)]
        for lo, hi in itertools.pairwise(bounds):
            hi_cond = f" AND series_id < {hi}" if hi < (1 << 64) else ""
            part = storage.execute(
                f"SELECT series_id, ts, value FROM `{db}`.metric_samples WHERE series_id >= {lo}{hi_cond} "
                f"AND ts >= {cutoff} AND ts < {upper} ORDER BY series_id, ts")
            if not part.num_rows:
                continue
            s_id = part.column("series_id").to_numpy()
            at = np.searchsorted(sids, s_id)
            known = at < len(sids)
            known[known] = sids[at[known]] == s_id[known]  # a sample without a series row: unreadable
            at = at[known]
            t = part.column("ts").to_numpy()[known] - base
            v = part.column("value").to_numpy()[known]
            del part, s_id, known
            if not len(at):
                continue
            edge = np.flatnonzero(at[1:] != at[:-1]) + 1
            starts = np.concatenate([[0], edge])
            run_pos.append(pos[at[starts]])
            run_len.append(np.diff(np.concatenate([starts, [len(at)]])))
            if n + len(t) > len(ts_out):  # storage grew since the count: grow the buffers
                size = max(n + len(t), len(ts_out) * 5 // 4)
                ts_out, val_out = _grow(ts_out, n, size), _grow(val_out, n, size)
            ts_out[n:n + len(t)] = t
            val_out[n:n + len(t)] = v
            n += len(t)
            del at, t, v
        ts_out, val_out = ts_out[:n], val_out[:n]
        rp = np.concatenate(run_pos) if run_pos else _EMPTY_I
        rl = np.concatenate(run_len) if run_len else _EMPTY_I
        nseg = len(self.index)
        if len(rp) and not (rp[1:] > rp[:-1]).all():  # positions not in series-id order: re-lay out
            p = np.repeat(rp, rl)
            keys, val_out = _sorted_unique((p << KEY_SHIFT) | (ts_out.astype(np.int64) + base), val_out)
            p, t64 = keys >> KEY_SHIFT, (keys & TS_MASK) - base
            offsets = np.zeros(nseg + 1, np.int64)
            np.cumsum(np.bincount(p, minlength=nseg), out=offsets[1:])
            return offsets, t64.astype(self._dtype), val_out
        counts = np.zeros(nseg, np.int64)
        counts[rp] = rl
        offsets = np.zeros(nseg + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        if len(ts_out) > 1:  # duplicate rows in storage (same series and ts): keep the last
            dup = ts_out[1:] == ts_out[:-1]
            if dup.any():
                b = offsets[1:-1]
                dup[b[(b > 0) & (b < len(ts_out))] - 1] = False  # not across series boundaries
                if dup.any():
                    keep = np.concatenate([~dup, [True]])
                    p = np.repeat(np.arange(nseg, dtype=np.int64), counts)[keep]
                    ts_out, val_out = ts_out[keep], val_out[keep]
                    np.cumsum(np.bincount(p, minlength=nseg), out=offsets[1:])
        return offsets, ts_out, val_out

    # --- reading -------------------------------------------------------------------------------

    def _find(self, groups: list[list[Any]], mint: int, maxt: int) -> tuple[
            _State, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Matched positions (label order), their block ranges, and the tail's matching samples."""
        st = self._state
        if st.coverage is None or mint < st.coverage or maxt >= st.limit or maxt < mint:
            return None
        pos = self.index.resolve([[tuple(m) for m in g] for g in groups])
        if pos is None:
            return None
        if not len(pos):
            return st, pos, _EMPTY_I, _EMPTY_I, _EMPTY_I, _EMPTY_I, _EMPTY_F
        seg_lo, seg_hi = st.segments(pos)
        lo_t, hi_t = int(mint) - st.base, int(maxt) - st.base
        lo = seg_search(st.ts, seg_lo, seg_hi, lo_t)
        hi = seg_search(st.ts, lo, seg_hi, hi_t, right=True)
        counts = hi - lo
        t_pos, t_ts, t_val = st.tail_arrays()
        t_sel = _EMPTY_I
        if len(t_pos):
            in_range = (t_ts >= mint) & (t_ts <= maxt)
            if in_range.any():
                r = np.flatnonzero(in_range)
                sel_of = np.full(max(len(self.index), int(pos.max()) + 1) + 1, -1, np.int64)
                sel_of[pos] = np.arange(len(pos), dtype=np.int64)
                s = sel_of[t_pos[r]]
                hit = s >= 0
                r = r[hit]
                t_sel, t_ts, t_val = s[hit], t_ts[r], t_val[r]
        if not len(t_sel):
            t_ts, t_val = _EMPTY_I, _EMPTY_F
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
        ts, vals = _gather(st, lo, counts)
        if len(t_sel):  # merge the tail's matches in place; the later write wins on equal (series, ts)
            keys, t_val = _sorted_unique((t_sel << KEY_SHIFT) | t_ts, t_val)
            t_sel, t_ts = keys >> KEY_SHIFT, keys & TS_MASK
            ends = np.cumsum(counts)
            s_lo, s_hi = (ends - counts)[t_sel], ends[t_sel]
            at = seg_search(ts, s_lo, s_hi, t_ts)
            hit = at < s_hi
            hit[hit] = ts[at[hit]] == t_ts[hit]
            vals[at[hit]] = t_val[hit]  # our own gathered copy
            new = ~hit
            if new.any():
                ts = np.insert(ts, at[new], t_ts[new])
                vals = np.insert(vals, at[new], t_val[new])
                counts = counts + np.bincount(t_sel[new], minlength=len(pos))
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


SLICE_COPY_MIN = 384  # mean samples per series from which per-series slice copies beat one gather


def _gather(st: _State, lo: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block samples [lo, lo + counts) of each selected series, concatenated: (ts + base as int64,
    values), new arrays (the caller may write into them).

    Long segments are copied slice by slice (contiguous copies, no (samples,) index array: about
    half the CPU of a gather at ~700 samples per series); short ones through one gathered index,
    where the per-series Python call would dominate."""
    total = int(counts.sum())
    if total < SLICE_COPY_MIN * max(len(counts), 1):
        starts_b = np.cumsum(counts) - counts
        idx = np.repeat(lo - starts_b, counts)  # sample k of the result is block sample idx[k]
        idx += np.arange(len(idx), dtype=np.int64)
        return np.add(st.ts[idx], st.base, dtype=np.int64), st.values[idx]
    ts = np.empty(total, np.int64)
    vals = np.empty(total, np.float64)
    s_ts, s_val = st.ts, st.values  # one published state: appends and compaction swap in new arrays
    ends = np.cumsum(counts)
    for a, b, first in zip((ends - counts).tolist(), ends.tolist(), lo.tolist(), strict=True):
        ts[a:b] = s_ts[first:first + b - a]
        vals[a:b] = s_val[first:first + b - a]
    ts += st.base
    return ts, vals


def _evict(offsets: np.ndarray, ts: np.ndarray, values: np.ndarray, cut: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Drop every sample with offset < `cut` (a prefix of each series' segment)."""
    nseg = len(offsets) - 1
    if not nseg:
        return offsets, ts, values, False
    gone = seg_search(ts, offsets[:-1], offsets[1:], cut) - offsets[:-1]
    if not gone.any():
        return offsets, ts, values, False
    keep = ts >= cut
    out_o = offsets.copy()
    out_o[1:] -= np.cumsum(gone)
    return out_o, ts[keep], values[keep], True


def _grow(a: np.ndarray, n: int, size: int) -> np.ndarray:
    out = np.empty(size, a.dtype)
    out[:n] = a[:n]
    return out
