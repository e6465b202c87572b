"""Ingest limits for metrics: active series (global and per metric), label count and length.

Configured under `limits.metrics` in heron.yml:

    limits:
      metrics:
        max_series: 2000000            # active series in all (0 = no limit)
        max_series_per_metric: 200000  # active series of one metric name
        max_label_names_per_series: 64
        max_label_name_length: 1024
        max_label_value_length: 4096
        active_window: 1h              # a series is active while it got a sample this recently
        max_exemplars_per_series: 100  # newest exemplars kept per series (0 = no cap)

A series over a limit is refused (its samples are not stored), the rest of the write goes
through; every refusal is counted in `heron_ingest_rejected_rows{signal="metrics",reason=...}`
and the receiver answers with a message that names the limit and the metric.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from heron.config import HeronConfig, parse_duration
from heron.exceptions import ConfigError
from heron.metrics.id_map import IdMap
from heron.metrics.model import Labels, metric_name
from heron.metrics.writer import FlatLabels

log = logging.getLogger("heron.metrics")

REASONS = ("series_limit", "per_metric_series_limit", "label_count", "label_name_length",
           "label_value_length")


@dataclass(frozen=True)
class LimitsConfig:
    max_series: int = 2_000_000
    max_series_per_metric: int = 200_000
    max_label_names_per_series: int = 64
    max_label_name_length: int = 1024
    max_label_value_length: int = 4096
    active_window: float = 3600.0
    max_exemplars_per_series: int = 100

    @classmethod
    def from_config(cls, config: HeronConfig) -> LimitsConfig:
        raw: Any = (config.limits or {}).get("metrics") or {}
        where = "limits.metrics"
        if not isinstance(raw, dict):
            raise ConfigError("must be a mapping", file=config.source, line=config.line_of(where), field=where)
        kw: dict[str, Any] = {}
        for key, value in raw.items():
            path = f"{where}.{key}"
            if key not in cls.__dataclass_fields__:
                raise ConfigError("unknown field", file=config.source, line=config.line_of(path), field=path)
            if key == "active_window":
                try:
                    kw[key] = parse_duration(value)
                except ValueError as exc:
                    raise ConfigError(str(exc), file=config.source, line=config.line_of(path),
                                      field=path) from None
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError("must be a non-negative integer (0 = no limit)", file=config.source,
                                  line=config.line_of(path), field=path)
            else:
                kw[key] = value
        return cls(**kw)


class SeriesLimiter:
    """Tracks active series and decides, per write, which series may be stored.

    Active series live in columns indexed by a slot (id, last sample time, metric code), with
    an `IdMap` from id to slot: a write of active series is one vectorized lookup and one
    scatter of the time, and the collector has no per-series objects to walk."""

    def __init__(self, config: LimitsConfig, rejected: Any = None) -> None:
        self.config = config
        self.rejected = rejected  # prometheus_client Counter(signal, reason) or None
        self._slots = IdMap()  # active series id -> slot
        self._n = 0  # slots in use (0 .. _n - 1)
        self._ids = np.empty(1024, np.uint64)  # slot -> series id
        self._seen_at = np.empty(1024, np.float64)  # slot -> time of its last write (monotonic)
        self._metric = np.empty(1024, np.int64)  # slot -> code of its metric name
        self._metric_names: list[str] = []  # code -> metric name
        self._metric_code: dict[str, int] = {}
        self._per_code = np.zeros(64, np.int64)  # code -> its active series
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def __len__(self) -> int:
        return self._n

    def admit(self, series: Sequence[Labels], ids: Sequence[int] | np.ndarray,
              counts: np.ndarray | None = None,
              flat: FlatLabels | None = None) -> tuple[np.ndarray | None, str]:
        """Mask of admitted series (None = all) and a message naming what was refused.

        Series already active cost one lookup of the write's ids; only the ids not seen before
        are looked at, with arrays: label counts and lengths from `flat` when the receiver has
        the label arrays (the exact per-series check only for sets they flag), and the
        per-metric and global limits by ranking the new series (as if admitted one by one in
        write order)."""
        now = time.monotonic()
        if now - self._last_sweep > min(60.0, self.config.active_window / 4):
            self.sweep(now)
        id_arr = np.asarray(ids, dtype=np.uint64)
        with self._lock:
            where = self._slots.find(id_arr)
            slots = self._slots.values(where)
            unseen = np.flatnonzero(slots < 0)
            if not len(unseen):  # the usual write of active series
                self._seen_at[slots] = now
                return None, ""
            fresh = unseen  # the first position of every series not seen before
            if len(unseen) > 1:
                _, first = np.unique(id_arr[unseen], return_index=True)
                if len(first) < len(unseen):
                    fresh = unseen[np.sort(first)]
            sets = flat.sets_of(fresh, len(series)) if flat is not None else None
            reasons = self._label_reasons(series, fresh, flat, sets)
            codes, names = self._names(series, fresh, flat, sets)
            glob = self._codes_of(names)
            admitted, reasons = self._rank(codes, names, reasons, glob)
            self._add(id_arr[fresh[admitted]], codes[admitted], glob, now, where[fresh[admitted]])
            known = slots[slots >= 0]
            self._seen_at[known] = now
            refused = id_arr[fresh[~admitted]]
            if not len(refused):
                return None, ""
            keep = ~np.isin(id_arr, refused)
        id_list = id_arr.tolist()
        reason_of = {int(id_arr[fresh[j]]): reasons[j] for j in np.flatnonzero(~admitted).tolist()}
        per_position = counts.tolist() if counts is not None else [1] * len(id_list)
        why: dict[str, tuple[int, str]] = {}
        for i in np.flatnonzero(~keep).tolist():  # every occurrence of a refused series
            kind, msg = reason_of[id_list[i]]  # type: ignore[misc]
            prev = why.get(kind, (0, msg))
            why[kind] = (prev[0] + per_position[i], prev[1])
        parts = []
        for kind, (n, msg) in why.items():
            if self.rejected is not None:
                self.rejected.labels("metrics", kind).inc(n)
            parts.append(f"{n} samples refused: {msg}")
        return keep, "; ".join(parts)

    def _add(self, ids: np.ndarray, codes: np.ndarray, glob: np.ndarray, now: float, where: np.ndarray) -> None:
        """Make distinct new series active (`glob[codes[j]]`: the metric code of ids[j];
        `where`: their `find` in `_slots`); caller holds the lock."""
        k = len(ids)
        if not k:
            return
        start, end = self._n, self._n + k
        if end > len(self._ids):
            size = max(end, 2 * len(self._ids))
            for attr in ("_ids", "_seen_at", "_metric"):
                old = getattr(self, attr)
                grown = np.empty(size, old.dtype)
                grown[:start] = old[:start]
                setattr(self, attr, grown)
        self._ids[start:end] = ids
        self._seen_at[start:end] = now
        self._metric[start:end] = glob[codes]
        self._slots.put(ids, np.arange(start, end, dtype=np.int64), where)
        self._n = end
        self._per_code[glob] += np.bincount(codes, minlength=len(glob))  # glob: distinct codes

    def _codes_of(self, names: list[str]) -> np.ndarray:
        """The code of each metric name (new names get one)."""
        get = self._metric_code.get
        codes = [get(n, -1) for n in names]
        if -1 in codes:
            for i, n in enumerate(names):
                if codes[i] == -1:
                    codes[i] = self._metric_code[n] = len(self._metric_names)
                    self._metric_names.append(n)
            if len(self._metric_names) > len(self._per_code):
                grown = np.zeros(2 * len(self._metric_names), np.int64)
                grown[:len(self._per_code)] = self._per_code
                self._per_code = grown
        return np.asarray(codes, np.int64)

    @property
    def _per_metric(self) -> Counter[str]:
        """Active series per metric name (for reading; the counts live in `_per_code`)."""
        return Counter({self._metric_names[c]: int(self._per_code[c]) for c in np.flatnonzero(self._per_code).tolist()})

    def _label_reasons(self, series: Sequence[Labels], fresh: np.ndarray, flat: FlatLabels | None,
                       sets: np.ndarray | None) -> list[tuple[str, str] | None]:
        """Label count/length refusal of each `series[fresh]` (None: fine); `sets`: their label
        sets in `flat`, if it has them all."""
        out: list[tuple[str, str] | None] = [None] * len(fresh)
        check = np.ones(len(fresh), dtype=bool)
        if flat is not None and sets is not None:
            check = self._flag(flat, sets)
        for j in np.flatnonzero(check).tolist():
            out[j] = self._check_labels(series[int(fresh[j])])
        return out

    def _flag(self, flat: FlatLabels, sets: np.ndarray) -> np.ndarray:
        """Sets that may break a label limit, from byte lengths (>= character lengths, so a set
        not flagged is within the limits; a flagged one gets the exact per-series check)."""
        c = self.config
        off = flat.offsets.astype(np.int64)
        n_labels = np.diff(off)
        flag = n_labels > c.max_label_names_per_series if c.max_label_names_per_series else n_labels < 0
        flag |= n_labels == 0
        for arr, limit in ((flat.names, c.max_label_name_length), (flat.values, c.max_label_value_length)):
            if limit:
                lens = np.asarray(pc.binary_length(arr).to_numpy(zero_copy_only=False), dtype=np.int64)
                over = lens > limit
                if over.any():
                    flag |= np.add.reduceat(over.astype(np.int64), np.minimum(off[:-1], len(over) - 1)) > 0
        return flag[sets]

    @staticmethod
    def _names(series: Sequence[Labels], fresh: np.ndarray, flat: FlatLabels | None,
               sets: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
        """Metric names of `series[fresh]` as (codes, distinct names)."""
        if flat is not None and sets is not None:
            enc = pc.dictionary_encode(flat.metric if flat.all_sets(sets) else flat.metric.take(pa.array(sets)))
            return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()
        code_of: dict[str, int] = {}
        codes = [code_of.setdefault(metric_name(series[i]), len(code_of)) for i in fresh.tolist()]
        return np.asarray(codes, dtype=np.int64), list(code_of)

    def _rank(self, codes: np.ndarray, names: list[str], reasons: list[tuple[str, str] | None],
              glob: np.ndarray) -> tuple[np.ndarray, list[tuple[str, str] | None]]:
        """Which fresh series (metric `names[codes[j]]`) fit the per-metric and global limits,
        in write order, exactly as admitting them one at a time would decide; fills in the
        reasons of those that do not."""
        c = self.config
        ok = np.ones(len(reasons), dtype=bool)
        bad = [j for j, r in enumerate(reasons) if r is not None] if reasons.count(None) < len(reasons) else []
        ok[bad] = False
        fits = ok.copy()
        if c.max_series_per_metric and ok.any():
            inv = codes[ok]
            order = np.argsort(inv, kind="stable")
            starts = np.zeros(len(names), dtype=np.int64)
            np.cumsum(np.bincount(inv, minlength=len(names))[:-1], out=starts[1:])
            rank = np.empty(len(inv), dtype=np.int64)
            rank[order] = np.arange(len(inv)) - starts[inv[order]]
            room = c.max_series_per_metric - self._per_code[glob]
            fits[ok] = rank < room[inv]
        admitted = fits.copy()
        if c.max_series:
            before = np.cumsum(fits) - fits  # admitted new series before each one
            over = before >= c.max_series - self._n
            admitted &= ~over
            for j in np.flatnonzero(ok & over).tolist():
                reasons[j] = ("series_limit", f"active series limit {c.max_series} reached")
        for j in np.flatnonzero(ok & ~fits & ~admitted).tolist():
            if reasons[j] is None:
                reasons[j] = ("per_metric_series_limit",
                              f"per-metric series limit {c.max_series_per_metric} reached for {names[codes[j]]}")
        return admitted, reasons

    def _check_labels(self, labels: Labels) -> tuple[str, str] | None:
        c = self.config
        if c.max_label_names_per_series and len(labels) > c.max_label_names_per_series:
            return ("label_count", f"series of {metric_name(labels)} has {len(labels)} labels, "
                                   f"more than max_label_names_per_series {c.max_label_names_per_series}")
        for k, v in labels:
            if c.max_label_name_length and len(k) > c.max_label_name_length:
                return ("label_name_length", f"label name {k[:64]!r}... of {metric_name(labels)} is longer "
                                             f"than max_label_name_length {c.max_label_name_length}")
            if c.max_label_value_length and len(v) > c.max_label_value_length:
                return ("label_value_length", f"value of label {k!r} of {metric_name(labels)} is longer "
                                              f"than max_label_value_length {c.max_label_value_length}")
        return None

    def sweep(self, now: float | None = None) -> int:
        """Forget series without samples for `active_window`; returns how many."""
        now = time.monotonic() if now is None else now
        cutoff = now - self.config.active_window
        with self._lock:
            n = self._n
            old = self._seen_at[:n] < cutoff
            gone = int(np.count_nonzero(old))
            if gone:
                self._per_code -= np.bincount(self._metric[:n][old], minlength=len(self._per_code))
                live = ~old
                m = n - gone
                for col in (self._ids, self._seen_at, self._metric):
                    col[:m] = col[:n][live]
                self._n = m
                self._slots.retain(self._ids[:m], np.arange(m, dtype=np.int64))
            self._last_sweep = now
        return gone


class ExemplarBuffer:
    """Prometheus' exemplar storage rules, per series: a series keeps its newest
    `max_exemplars_per_series` exemplars (a circular buffer: a new one evicts the oldest), and
    an exemplar not newer than the series' newest is refused (the same one again: duplicate;
    older: out of order), as Prometheus' `AddExemplar` does. Decided at ingest (in memory; a
    restart forgets the newest timestamps) and applied at read (`exemplars.query` returns the
    newest ones per series). Every drop is counted in
    `heron_metric_exemplars_dropped_total{reason}`."""

    def __init__(self, max_per_series: int, dropped: Any = None, max_series: int = 1_000_000) -> None:
        self.max_per_series = max_per_series
        self.dropped = dropped  # prometheus_client Counter(reason) or None
        self.max_series = max_series
        self._newest: dict[int, tuple[int, Any, float]] = {}  # sid -> (ts, labels, value)
        self._held: dict[int, int] = {}  # sid -> exemplars in its buffer
        self._lock = threading.Lock()
        self.loaded = threading.Event()  # set once `load` is done (or failed)

    def load(self, storage: Any) -> int:
        """Each series' newest exemplar and buffer fill from `metric_exemplars`, so a restart
        keeps refusing duplicates and out-of-order exemplars (Prometheus rebuilds its exemplar
        buffers from its WAL). Series admitted meanwhile keep what they have. Returns the
        series loaded."""
        try:
            t = storage.execute(
                "SELECT series_id, max(ts) AS newest, argMax(labels, ts) AS newest_labels, "
                "argMax(value, ts) AS newest_value, uniqExact(ts, trace_id) AS held "
                f"FROM `{storage.database}`.metric_exemplars GROUP BY series_id LIMIT {int(self.max_series)}")
            rows = zip(*(t.column(c).to_pylist() for c in ("series_id", "newest", "newest_labels", "newest_value",
                                                           "held")), strict=True)
            n = 0
            with self._lock:
                for sid, ts, labels, value, held in rows:
                    if sid not in self._newest:
                        self._newest[sid] = (ts, sorted(labels), value)
                        self._held[sid] = min(held, self.max_per_series) if self.max_per_series else held
                        n += 1
            return n
        finally:
            self.loaded.set()

    def admit(self, table: pa.Table) -> pa.Table:
        """The rows of a `metric_exemplars` table to store (in order)."""
        if not table.num_rows:
            return table
        sids = table.column("series_id").to_pylist()
        ts = table.column("ts").to_pylist()
        values = table.column("value").to_pylist()
        labels = table.column("labels").to_pylist()
        keep = np.ones(table.num_rows, dtype=bool)
        why: Counter[str] = Counter()
        with self._lock:
            if len(self._newest) > self.max_series:
                self._newest.clear()
                self._held.clear()
            for i, sid in enumerate(sids):
                prev = self._newest.get(sid)
                if prev is not None and ts[i] <= prev[0]:
                    keep[i] = False
                    same = ts[i] == prev[0] and sorted(labels[i]) == prev[1] and values[i] == prev[2]
                    why["duplicate" if same else "out_of_order"] += 1
                    continue
                self._newest[sid] = (ts[i], sorted(labels[i]), values[i])
                held = self._held.get(sid, 0) + 1
                if self.max_per_series and held > self.max_per_series:
                    why["evicted"] += 1
                    held = self.max_per_series
                self._held[sid] = held
        if self.dropped is not None:
            for reason, n in why.items():
                self.dropped.labels(reason).inc(n)
        return table if keep.all() else table.filter(pa.array(keep))


def limiter_of(heron: Any) -> SeriesLimiter:
    """The instance's limiter, made on first use from `limits.metrics` (kept current on reload),
    with its exemplar buffer rules (`writer.exemplars`)."""
    writer = heron.metrics_writer
    if writer.limiter is None:
        config = LimitsConfig.from_config(heron.config)
        writer.limiter = SeriesLimiter(config, heron.metrics.ingest_rejected)
        from prometheus_client import Counter as PromCounter

        from heron.metrics import exemplars

        dropped = PromCounter("heron_metric_exemplars_dropped", "Exemplars not kept, by reason: duplicate, "
                              "out_of_order (not newer than the series' newest), evicted (over "
                              "limits.metrics.max_exemplars_per_series).", ["reason"],
                              registry=heron.metrics.registry)
        writer.exemplars = ExemplarBuffer(config.max_exemplars_per_series, dropped)
        exemplars.PER_SERIES[heron.storage.database] = config.max_exemplars_per_series

        def load() -> None:
            try:
                log.info("exemplar buffers of %d series loaded", writer.exemplars.load(heron.storage))
            except Exception:  # the rules then start empty, as before a restart was remembered
                log.exception("loading the exemplar buffers failed")

        threading.Thread(target=load, name="heron-exemplar-load", daemon=True).start()

        async def on_reload(config: HeronConfig) -> None:
            writer.limiter.config = LimitsConfig.from_config(config)
            writer.exemplars.max_per_series = writer.limiter.config.max_exemplars_per_series
            exemplars.PER_SERIES[heron.storage.database] = writer.limiter.config.max_exemplars_per_series

        heron.reload_hooks.append(on_reload)
    return writer.limiter  # type: ignore[no-any-return]
