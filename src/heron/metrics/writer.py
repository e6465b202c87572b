"""Turn decoded samples into the Arrow tables of `metric_series` and `metric_samples`.

Every metrics receiver (scrape, remote_write, OTLP, recording rules) ends here. The writer keeps
the set of series ids already stored so a series row is written once, not per sample; the set
is loaded from storage at start (series rows are idempotent anyway: ReplacingMergeTree).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from heron.metrics.id_map import IdMap
from heron.metrics.model import Labels, metric_name, series_id
from heron.pipeline import Pipeline
from heron.storage.base import Storage

if TYPE_CHECKING:
    from heron.metrics.head import Head
    from heron.metrics.limits import ExemplarBuffer, SeriesLimiter

SERIES_SCHEMA = pa.schema([("series_id", pa.uint64()), ("metric", pa.string()),
                           ("labels", pa.map_(pa.string(), pa.string()))])
SAMPLES_SCHEMA = pa.schema([("series_id", pa.uint64()), ("ts", pa.int64()), ("value", pa.float64())])
METADATA_SCHEMA = pa.schema([("metric", pa.string()), ("type", pa.string()), ("help", pa.string()),
                             ("unit", pa.string())])


def labels_map(rows: Sequence[Labels]) -> pa.MapArray:
    """Label sets as an Arrow Map column, built from flat key/value arrays (15x faster than
    converting a Python list of pair lists)."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    keys = [k for r in rows for k, _ in r]
    values = [v for r in rows for _, v in r]
    return pa.MapArray.from_arrays(pa.array(offsets), pa.array(keys, pa.string()), pa.array(values, pa.string()))


@dataclass(frozen=True)
class FlatLabels:
    """Label sets of some series of a write as flat Arrow arrays, as a receiver decoded them
    (remote write's new series): the writer builds `metric_series` rows and the limiter checks
    label counts and lengths from these arrays instead of per-series Python.

    Set j holds `names/values[offsets[j]:offsets[j+1]]` (sorted, no empty values), the
    `metric` (`__name__`) value, and belongs to `series[rows[j]]` (-1: not in the write)."""

    rows: np.ndarray
    offsets: np.ndarray
    names: pa.StringArray
    values: pa.StringArray
    metric: pa.StringArray

    def filter(self, keep: np.ndarray) -> FlatLabels:
        """The same sets for `series[keep]` (dropped series' sets get row -1)."""
        moved = np.cumsum(keep) - 1
        kept = self.rows >= 0
        kept[kept] = keep[self.rows[kept]]
        rows = np.where(kept, moved[np.maximum(self.rows, 0)], -1)
        return FlatLabels(rows, self.offsets, self.names, self.values, self.metric)

    def sets_of(self, positions: np.ndarray, n_series: int) -> np.ndarray | None:
        """Index of the set of each of `series[positions]`, None unless every one has a set."""
        where = np.full(n_series, -1, dtype=np.int64)
        ok = self.rows >= 0
        where[self.rows[ok]] = np.flatnonzero(ok)
        j = where[positions]
        return None if (j < 0).any() else j

    def table(self, sets: np.ndarray, ids: np.ndarray) -> pa.Table:
        """`metric_series` rows of the given sets."""
        labels = pa.MapArray.from_arrays(pa.array(self.offsets.astype(np.int32, copy=False)),
                                         self.names, self.values)
        if self.all_sets(sets):  # a sender's first writes: every set, in order, no copies
            return pa.table([pa.array(ids, pa.uint64()), self.metric, labels], schema=SERIES_SCHEMA)
        take = pa.array(sets)
        return pa.table([pa.array(ids, pa.uint64()), self.metric.take(take), labels.take(take)],
                        schema=SERIES_SCHEMA)

    def all_sets(self, sets: np.ndarray) -> bool:
        """Whether `sets` is every set in order (0, 1, ..., n - 1)."""
        n = len(self.metric)
        return len(sets) == n and (n == 0 or (sets[0] == 0 and sets[-1] == n - 1 and bool((np.diff(sets) == 1).all())))


def _without_series(extra: dict[str, pa.Table] | None, refused: np.ndarray) -> dict[str, pa.Table] | None:
    """`extra` tables less the rows (exemplars) of series a limit refused."""
    if not extra or "metric_exemplars" not in extra:
        return extra
    ex = extra["metric_exemplars"]
    mask = ~np.isin(ex.column("series_id").to_numpy(), refused)
    return {**extra, "metric_exemplars": ex.filter(pa.array(mask))}


class SeriesIndex:
    """Label set -> series id, and which ids are already in storage (thread-safe)."""

    def __init__(self, refresh: float = 6 * 3600.0) -> None:
        self._ids: dict[Labels, int] = {}
        # Ids whose metric_series row was written recently, in generations of `refresh / 2`
        # each: `_written` maps an id to the generation that wrote its row, and a row is
        # rewritten once it is older than the previous generation (every refresh/2 to refresh
        # seconds), because rows carry the retention TTL (on updated_at) and a series that lives
        # longer than the retention must not lose its labels while samples flow. An `IdMap`
        # (numpy), so that a write's ids are checked in a few array passes, not per id in
        # Python, and the garbage collector has nothing to walk.
        self._written = IdMap()
        self._gen = 1  # generations < _gen - 1 are too old (MISSING = -1, _FORGOTTEN: never)
        self._since = time.time()
        self.refresh = refresh
        self._lock = threading.Lock()

    def load(self, storage: Storage) -> int:
        t = storage.execute(f"SELECT series_id, toUnixTimestamp(max(updated_at)) AS at "
                            f"FROM `{storage.database}`.metric_series GROUP BY series_id")
        if t.num_rows:
            ids = t.column("series_id").to_numpy().astype(np.uint64)
            at = t.column("at").to_numpy().astype(np.float64)
            now = time.time()
            with self._lock:
                self._rotate(now)
                age = now - at
                current = age < self.refresh / 2
                previous = (age >= self.refresh / 2) & (age < self.refresh)
                self._written.set(ids[previous], self._gen - 1)
                self._written.set(ids[current], self._gen)
        return len(self)

    def _rotate(self, now: float) -> None:
        """Age the generations (caller holds the lock); forgets ids no generation holds."""
        age = now - self._since
        if age >= self.refresh:
            self._gen, self._since = self._gen + 2, now
        elif age >= self.refresh / 2:
            self._gen, self._since = self._gen + 1, now
        else:
            return
        ids, gens = self._written.items()
        live = gens >= self._gen - 1
        if not live.all():
            self._written.retain(ids[live], gens[live])

    def id_of(self, labels: Labels) -> int:
        sid = self._ids.get(labels)
        if sid is None:
            sid = series_id(labels)
            if len(self._ids) > 2_000_000:
                self._ids.clear()
            self._ids[labels] = sid
        return sid

    def remember(self, series: Sequence[Labels], ids: Sequence[int]) -> None:
        """Ids a receiver already computed (same hash as `series_id`), so `id_of` need not."""
        if len(self._ids) > 2_000_000:
            self._ids.clear()
        self._ids.update(zip(series, ids, strict=True))

    def claim_positions(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Positions (ascending) of the first occurrence of each of `ids` whose row needs
        writing (unknown, or written too long ago, see `__init__`); marks them written (the
        caller writes their rows)."""
        id_arr = np.asarray(ids, np.uint64)
        with self._lock:
            self._rotate(time.time())
            where = self._written.find(id_arr)
            need = self._written.values(where) < self._gen - 1
            if not need.any():  # the usual write of known series
                return _NO_POSITIONS
            pos = np.flatnonzero(need)
            inserted = self._written.put(id_arr[pos], self._gen, where[pos])
            if len(pos) > 1 and inserted < len(pos):  # rows due again, or a series twice in one write
                _, first = np.unique(id_arr[pos], return_index=True)
                if len(first) < len(pos):
                    pos = pos[np.sort(first)]
        return pos

    def claim_new(self, ids: Sequence[int] | np.ndarray) -> list[int]:
        """The ids `claim_positions` marks, in order of first appearance."""
        id_arr = np.asarray(ids, np.uint64)
        return id_arr[self.claim_positions(id_arr)].tolist()  # type: ignore[no-any-return]

    def claim(self, ids: Sequence[int] | np.ndarray) -> set[int]:
        return set(self.claim_new(ids))

    def forget(self, ids: Sequence[int] | np.ndarray) -> None:
        """Undo `claim_new` when the write that carried them was refused."""
        if len(ids):
            with self._lock:
                self._written.set(np.asarray(ids, np.uint64), _FORGOTTEN)

    def __len__(self) -> int:
        with self._lock:
            _, gens = self._written.items()
            return int(np.count_nonzero(gens >= self._gen - 1))


_NO_POSITIONS = np.empty(0, np.int64)
_FORGOTTEN = -2


class MetricsWriter:
    def __init__(self, pipeline: Pipeline, index: SeriesIndex) -> None:
        self.pipeline = pipeline
        self.index = index
        self.limiter: SeriesLimiter | None = None  # set by heron.metrics.limits.limiter_of
        self.exemplars: ExemplarBuffer | None = None  # likewise: per-series exemplar rules
        self.head: Head | None = None  # acknowledged samples are queryable from memory at once

    async def write_limited(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray,
                            ts: np.ndarray, values: np.ndarray,
                            extra: dict[str, pa.Table] | None = None, *, ids: np.ndarray | None = None,
                            flat: FlatLabels | None = None) -> tuple[int, str]:
        """`write` for external senders: series over a limit (heron.metrics.limits) are left out.

        Returns (samples written, message naming what was refused or "")."""
        message = ""
        if self.limiter is not None and len(series):
            if ids is None:
                ids = self.ids_of(series)
            counts_arr = np.asarray(counts, dtype=np.int64)
            keep, message = self.limiter.admit(series, ids, counts_arr, flat)
            if keep is not None:
                series = [s for s, k in zip(series, keep.tolist(), strict=True) if k]
                ts, values = ts[np.repeat(keep, counts_arr)], values[np.repeat(keep, counts_arr)]
                refused = ids[~keep]
                counts, ids = counts_arr[keep], ids[keep]
                flat = flat.filter(keep) if flat is not None else None
                extra = _without_series(extra, refused)
                if not series:
                    if extra:  # metadata still applies; exemplars of refused series are gone
                        await self.pipeline.submit(self._exemplar_rules(extra) or {}, "metrics")
                    return 0, message
        extra = self._exemplar_rules(extra)
        return await self.write(series, counts, ts, values, extra, ids=ids, flat=flat), message

    def _exemplar_rules(self, extra: dict[str, pa.Table] | None) -> dict[str, pa.Table] | None:
        """`extra` with only the exemplars the per-series exemplar buffer keeps (limits.py)."""
        if self.exemplars is None or not extra or "metric_exemplars" not in extra:
            return extra
        return {**extra, "metric_exemplars": self.exemplars.admit(extra["metric_exemplars"])}

    def ids_of(self, series: Sequence[Labels]) -> np.ndarray:
        id_of = self.index.id_of
        return np.fromiter((id_of(s) for s in series), np.uint64, len(series))

    def tables(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray,
               ts: np.ndarray, values: np.ndarray, *, ids: np.ndarray | None = None,
               flat: FlatLabels | None = None) -> tuple[dict[str, pa.Table], np.ndarray]:
        """Arrow tables for `series[i]` repeated `counts[i]` times over the flat ts/values.

        `ids`: the series ids when the receiver computed them (the same hash as `series_id`);
        `flat`: label arrays the series rows are built from when they cover every new series.
        Returns the tables and the series ids newly claimed (to `forget` if the write fails)."""
        if ids is None:
            ids = self.ids_of(series)
        id_arr = np.repeat(ids, np.asarray(counts, dtype=np.int64))
        samples = pa.table([pa.array(id_arr, pa.uint64()), pa.array(ts, pa.int64()),
                            pa.array(values, pa.float64())], schema=SAMPLES_SCHEMA)
        positions = self.index.claim_positions(ids)
        tables = {"metric_samples": samples}
        if not len(positions):
            return tables, positions
        new_ids = ids if len(positions) == len(ids) else ids[positions]
        sets = flat.sets_of(positions, len(series)) if flat is not None else None
        if sets is not None and flat is not None:
            tables["metric_series"] = flat.table(sets, new_ids)
        else:
            rows = [series[i] for i in positions.tolist()]
            tables["metric_series"] = pa.table(
                [pa.array(new_ids, pa.uint64()), pa.array([metric_name(r) for r in rows], pa.string()),
                 labels_map(rows)], schema=SERIES_SCHEMA)
        return tables, new_ids

    async def write(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray,
                    ts: np.ndarray, values: np.ndarray,
                    extra: dict[str, pa.Table] | None = None, *, ids: np.ndarray | None = None,
                    flat: FlatLabels | None = None) -> int:
        """Durably write; returns the number of samples. Raises Backpressure like the pipeline."""
        if ids is None:
            ids = self.ids_of(series)
        tables, new = self.tables(series, counts, ts, values, ids=ids, flat=flat)
        if extra:
            tables.update(extra)
        try:
            await self.pipeline.submit(tables, "metrics")
        except BaseException:
            self.index.forget(new)
            raise
        if self.head is not None:  # flat: the remote-write decoder's sets (no empty values)
            self.head.append(series, counts, ts, values, ids, clean=flat is not None)
        return len(ts)

    def write_sync(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray,
                   ts: np.ndarray, values: np.ndarray, extra: dict[str, pa.Table] | None = None) -> int:
        ids = self.ids_of(series)
        tables, new = self.tables(series, counts, ts, values, ids=ids)
        if extra:
            tables.update(extra)
        try:
            self.pipeline.submit_sync(tables, "metrics")
        except BaseException:
            self.index.forget(new)
            raise
        if self.head is not None:
            self.head.append(series, counts, ts, values, ids)
        return len(ts)
