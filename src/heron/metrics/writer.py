"""Turn decoded samples into the Arrow tables of `metric_series` and `metric_samples`.

Every metrics receiver (scrape, remote_write, OTLP, recording rules) ends here. The writer keeps
the set of series ids already stored so a series row is written once, not per sample; the set
is loaded from storage at start (series rows are idempotent anyway: ReplacingMergeTree).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from heron.metrics.model import Labels, metric_name, series_id
from heron.pipeline import Pipeline
from heron.storage.base import Storage

if TYPE_CHECKING:
    from heron.metrics.head import Head
    from heron.metrics.limits import SeriesLimiter

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


class SeriesIndex:
    """Label set -> series id, and which ids are already in storage (thread-safe)."""

    def __init__(self, refresh: float = 6 * 3600.0) -> None:
        self._ids: dict[Labels, int] = {}
        # id -> when its metric_series row was last written (unix seconds). Rows are rewritten
        # every `refresh` seconds: they carry the retention TTL (on updated_at), so a series
        # that lives longer than the retention must not lose its labels while samples flow.
        self._known: dict[int, float] = {}
        self.refresh = refresh
        self._lock = threading.Lock()

    def load(self, storage: Storage) -> int:
        t = storage.execute(f"SELECT series_id, toUnixTimestamp(max(updated_at)) AS at "
                            f"FROM `{storage.database}`.metric_series GROUP BY series_id")
        if t.num_rows:
            with self._lock:
                self._known.update(zip(t.column("series_id").to_pylist(),
                                       map(float, t.column("at").to_pylist()), strict=True))
        return len(self._known)

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

    def claim_new(self, ids: Sequence[int]) -> list[int]:
        """Which of `ids` need their row written (unknown, or written more than `refresh` ago);
        marks them written now (the caller writes their rows)."""
        now = time.time()
        cutoff = now - self.refresh
        known = self._known
        with self._lock:
            new = [i for i in ids if known.get(i, 0.0) < cutoff]
            known.update(dict.fromkeys(new, now))
        return new

    def forget(self, ids: Sequence[int]) -> None:
        """Undo `claim_new` when the write that carried them was refused."""
        with self._lock:
            for i in ids:
                self._known.pop(i, None)

    def __len__(self) -> int:
        return len(self._known)


class MetricsWriter:
    def __init__(self, pipeline: Pipeline, index: SeriesIndex) -> None:
        self.pipeline = pipeline
        self.index = index
        self.limiter: SeriesLimiter | None = None  # set by heron.metrics.limits.limiter_of
        self.head: Head | None = None  # acknowledged samples are queryable from memory at once

    async def write_limited(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray,
                            ts: np.ndarray, values: np.ndarray,
                            extra: dict[str, pa.Table] | None = None) -> tuple[int, str]:
        """`write` for external senders: series over a limit (heron.metrics.limits) are left out.

        Returns (samples written, message naming what was refused or "")."""
        message = ""
        if self.limiter is not None and len(series):
            ids = [self.index.id_of(s) for s in series]
            counts_arr = np.asarray(counts, dtype=np.int64)
            keep, message = self.limiter.admit(series, ids, counts_arr)
            if keep is not None:
                series = [s for s, k in zip(series, keep.tolist(), strict=True) if k]
                ts, values = ts[np.repeat(keep, counts_arr)], values[np.repeat(keep, counts_arr)]
                counts = counts_arr[keep]
                if not series:
                    if extra:
                        await self.pipeline.submit(extra, "metrics")
                    return 0, message
        return await self.write(series, counts, ts, values, extra), message

    def tables(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray,
               ts: np.ndarray, values: np.ndarray) -> tuple[dict[str, pa.Table], list[int]]:
        """Arrow tables for `series[i]` repeated `counts[i]` times over the flat ts/values.

        Returns the tables and the series ids newly claimed (to `forget` if the write fails)."""
        ids = [self.index.id_of(s) for s in series]
        id_arr = np.repeat(np.asarray(ids, dtype=np.uint64), np.asarray(counts, dtype=np.int64))
        samples = pa.table([pa.array(id_arr, pa.uint64()), pa.array(ts, pa.int64()),
                            pa.array(values, pa.float64())], schema=SAMPLES_SCHEMA)
        new = self.index.claim_new(list(dict.fromkeys(ids)))
        tables = {"metric_samples": samples}
        if new:
            by_id = dict(zip(ids, series, strict=True))
            rows = [by_id[i] for i in new]
            tables["metric_series"] = pa.table(
                [pa.array(new, pa.uint64()), pa.array([metric_name(r) for r in rows], pa.string()),
                 labels_map(rows)], schema=SERIES_SCHEMA)
        return tables, new

    async def write(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray,
                    ts: np.ndarray, values: np.ndarray,
                    extra: dict[str, pa.Table] | None = None) -> int:
        """Durably write; returns the number of samples. Raises Backpressure like the pipeline."""
        tables, new = self.tables(series, counts, ts, values)
        if extra:
            tables.update(extra)
        try:
            await self.pipeline.submit(tables, "metrics")
        except BaseException:
            self.index.forget(new)
            raise
        if self.head is not None:
            self.head.append(series, counts, ts, values)
        return len(ts)

    def write_sync(self, series: Sequence[Labels], counts: Sequence[int] | np.ndarray,
                   ts: np.ndarray, values: np.ndarray, extra: dict[str, pa.Table] | None = None) -> int:
        tables, new = self.tables(series, counts, ts, values)
        if extra:
            tables.update(extra)
        try:
            self.pipeline.submit_sync(tables, "metrics")
        except BaseException:
            self.index.forget(new)
            raise
        if self.head is not None:
            self.head.append(series, counts, ts, values)
        return len(ts)
