"""OTLP metrics to Prometheus series, as the OpenTelemetry–Prometheus compatibility spec says.

- names: invalid characters become `_`, the unit is appended as a word (`s` -> `_seconds`,
  `By` -> `_bytes`, `1` on a gauge -> `_ratio`, `{packets}` dropped, `m/s` ->
  `_meters_per_second`), monotonic sums end in `_total`;
- resource: `service.namespace/service.name` -> `job`, `service.instance.id` -> `instance`; the
  other resource attributes go to a `target_info` series (value 1);
- gauge -> gauge; monotonic sum -> counter; non-monotonic sum -> gauge; histogram ->
  `_bucket{le}` (cumulative), `_sum`, `_count`; summary -> `{quantile}`, `_sum`, `_count`;
- delta temporality is turned into cumulative per series, in memory (as Prometheus'
  delta-to-cumulative does), continuing from the last stored value after a restart of Heron;
- a cumulative point (counter, histogram, summary `_sum`/`_count`) whose `start_time_unix_nano`
  is newer than the one seen before for its series is a reset (the sender restarted): a 0 is
  written at the new start time, as Prometheus' OTLP receiver does with created-timestamp
  zero ingestion, so `rate()` sees the reset even when the new value is above the old one;
- exponential histograms are not stored yet: they are counted as rejected and reported back
  in `partial_success`, never silently dropped;
- a point flagged NO_RECORDED_VALUE becomes a stale marker.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heron.metrics.model import STALE_NAN, Labels, series_id
from heron.storage.base import Storage
from heron.traces.attributes import any_value

UNITS = {"d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
         "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
         "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tebibytes", "KBy": "kilobytes",
         "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes", "m": "meters", "V": "volts",
         "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius", "Hz": "hertz",
         "%": "percent"}
PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}
RESOURCE_IDENTITY = ("service.name", "service.namespace", "service.instance.id")
AGG_DELTA, AGG_CUMULATIVE = 1, 2
FLAG_NO_RECORDED_VALUE = 1
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_NONWORD = re.compile(r"[^a-zA-Z0-9:]+")


def _unit_words(unit: str, gauge: bool) -> list[str]:
    unit = re.sub(r"\{[^}]*\}", "", unit).strip()
    if not unit:
        return []
    if unit == "1":
        return ["ratio"] if gauge else []
    main, _, per = unit.partition("/")
    words = [UNITS.get(main, main)] if main else []
    if per:
        words += ["per", PER_UNITS.get(per, per)]
    return [piece for word in words for piece in _NONWORD.split(word) if piece]


def metric_name(name: str, unit: str, kind: str) -> str:
    """OTel name + unit + kind ('counter', 'gauge', other) -> Prometheus metric name."""
    tokens = [t for t in _NONWORD.split(name) if t]
    for word in _unit_words(unit, kind == "gauge"):
        if word not in tokens:
            tokens.append(word)
    if kind == "counter":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    out = "_".join(tokens)
    return "_" + out if out[:1].isdigit() else out


def label_name(key: str) -> str:
    out = _INVALID.sub("_", key).replace(":", "_")
    if out[:1].isdigit():
        out = "key_" + out
    return out


def _attrs(kvs: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for kv in kvs:
        name = label_name(kv.key)
        value = any_value(kv.value)
        # Two keys that sanitize to the same name: values joined with ';' (the spec's rule).
        out[name] = f"{out[name]};{value}" if name in out and value else value
    return out


@dataclass
class Converted:
    series: list[Labels] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    delta: list[bool] = field(default_factory=list)
    start: list[int] = field(default_factory=list)  # cumulative points: start time ms (0: none)
    metadata: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    exemplars: list[tuple[int, Labels, int, float]] = field(default_factory=list)  # (sample index, ...)

    def exemplar(self, index: int, e: Any) -> None:
        """An OTLP exemplar of sample `index`: filtered attributes plus trace_id/span_id (hex),
        as Prometheus' OTLP translator labels it."""
        labels = _attrs(e.filtered_attributes)
        if e.trace_id:
            labels["trace_id"] = e.trace_id.hex()
        if e.span_id:
            labels["span_id"] = e.span_id.hex()
        value = float(e.as_int) if e.WhichOneof("value") == "as_int" else float(e.as_double)
        self.exemplars.append((index, tuple(sorted((k, v) for k, v in labels.items() if v != "")),
                               e.time_unix_nano // 1_000_000, value))

    def add(self, labels: dict[str, str], ts_ns: int, value: float, delta: bool = False,
            start_ns: int = 0) -> None:
        """One sample; `start_ns`: the start time of a cumulative point (for reset detection)."""
        self.series.append(tuple(sorted((k, v) for k, v in labels.items() if v != "")))
        self.ts.append(ts_ns // 1_000_000)
        self.values.append(value)
        self.delta.append(delta)
        self.start.append(0 if delta else start_ns // 1_000_000)


def _point_value(p: Any) -> float:
    if p.flags & FLAG_NO_RECORDED_VALUE:
        return STALE_NAN
    return float(p.as_int) if p.WhichOneof("value") == "as_int" else float(p.as_double)


def convert(request: Any) -> Converted:
    """ExportMetricsServiceRequest -> flat samples (labels, ms, value, is_delta) and metadata."""
    out = Converted()
    for rm in request.resource_metrics:
        res = {kv.key: any_value(kv.value) for kv in rm.resource.attributes}
        job = res.get("service.name", "")
        if res.get("service.namespace") and job:
            job = f"{res['service.namespace']}/{job}"
        base = {"job": job, "instance": res.get("service.instance.id", "")}
        latest = 0
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                latest = max(latest, _metric(out, m, base))
        info = {label_name(k): v for k, v in res.items() if k not in RESOURCE_IDENTITY}
        if info and latest:
            out.add({"__name__": "target_info", **info, **base}, latest, 1.0)
            out.metadata["target_info"] = ("gauge", "Target metadata", "")
    return out


def _metric(out: Converted, m: Any, base: dict[str, str]) -> int:
    kind = m.WhichOneof("data")
    latest = 0
    if kind == "gauge" or (kind == "sum" and not m.sum.is_monotonic):
        data = m.gauge if kind == "gauge" else m.sum
        delta = kind == "sum" and data.aggregation_temporality == AGG_DELTA
        name = metric_name(m.name, m.unit, "gauge")
        out.metadata[name] = ("gauge", m.description, m.unit)
        for p in data.data_points:
            out.add({**_attrs(p.attributes), **base, "__name__": name}, p.time_unix_nano, _point_value(p), delta)
            for e in p.exemplars:
                out.exemplar(len(out.series) - 1, e)
            latest = max(latest, p.time_unix_nano)
    elif kind == "sum":
        name = metric_name(m.name, m.unit, "counter")
        out.metadata[name] = ("counter", m.description, m.unit)
        delta = m.sum.aggregation_temporality == AGG_DELTA
        for p in m.sum.data_points:
            out.add({**_attrs(p.attributes), **base, "__name__": name}, p.time_unix_nano, _point_value(p), delta,
                    p.start_time_unix_nano)
            for e in p.exemplars:
                out.exemplar(len(out.series) - 1, e)
            latest = max(latest, p.time_unix_nano)
    elif kind == "histogram":
        name = metric_name(m.name, m.unit, "histogram")
        out.metadata[name] = ("histogram", m.description, m.unit)
        delta = m.histogram.aggregation_temporality == AGG_DELTA
        for p in m.histogram.data_points:
            labels = {**_attrs(p.attributes), **base}
            stale = bool(p.flags & FLAG_NO_RECORDED_VALUE)
            t, st = p.time_unix_nano, p.start_time_unix_nano
            counts = np.cumsum(np.asarray(p.bucket_counts, dtype=np.float64))
            bounds = list(p.explicit_bounds)
            first_bucket = len(out.series)
            for i, bound in enumerate(bounds):
                c = float(counts[i]) if i < len(counts) else float(p.count)
                out.add({**labels, "__name__": f"{name}_bucket", "le": _fmt_le(bound)}, t,
                        STALE_NAN if stale else c, delta, st)
            out.add({**labels, "__name__": f"{name}_bucket", "le": "+Inf"}, t,
                    STALE_NAN if stale else float(p.count), delta, st)
            for e in p.exemplars:  # on the bucket the exemplar's value falls in
                v = float(e.as_int) if e.WhichOneof("value") == "as_int" else float(e.as_double)
                out.exemplar(first_bucket + int(np.searchsorted(bounds, v, side="left")), e)
            if p.HasField("sum") or not stale:
                out.add({**labels, "__name__": f"{name}_sum"}, t, STALE_NAN if stale else p.sum, delta, st)
            out.add({**labels, "__name__": f"{name}_count"}, t, STALE_NAN if stale else float(p.count), delta, st)
            latest = max(latest, t)
    elif kind == "summary":
        name = metric_name(m.name, m.unit, "summary")
        out.metadata[name] = ("summary", m.description, m.unit)
        for p in m.summary.data_points:
            labels = {**_attrs(p.attributes), **base}
            stale = bool(p.flags & FLAG_NO_RECORDED_VALUE)
            t = p.time_unix_nano
            for q in p.quantile_values:
                out.add({**labels, "__name__": name, "quantile": _fmt_le(q.quantile)}, t,
                        STALE_NAN if stale else q.value)
            st = p.start_time_unix_nano
            out.add({**labels, "__name__": f"{name}_sum"}, t, STALE_NAN if stale else p.sum, start_ns=st)
            out.add({**labels, "__name__": f"{name}_count"}, t, STALE_NAN if stale else float(p.count),
                    start_ns=st)
            latest = max(latest, t)
    elif kind == "exponential_histogram":
        n = len(m.exponential_histogram.data_points)
        out.rejected += n
        out.errors.append(f"{m.name}: exponential histograms are not supported yet ({n} points rejected)")
    else:
        out.rejected += 1
        out.errors.append(f"{m.name}: metric without data")
    return latest


def _fmt_le(v: float) -> str:
    """Prometheus formats `le`/`quantile` like Go's strconv 'g' with shortest repr: 1 -> "1"."""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


class DeltaToCumulative:
    """Running totals for delta series, so they are stored as Prometheus counters; and the
    start times of cumulative series, so a sender's restart is written as a reset.

    A series this process has no total for (first seen since start, or dropped when the table
    was full) continues from the last value stored for it, so a restart does not start the
    counters again from 0 (which a query would read as a reset). The first lookup waits until
    everything acknowledged (the WAL replayed at start included) is in storage."""

    def __init__(self, max_series: int = 1_000_000, storage: Storage | None = None,
                 flush: Callable[[], None] | None = None) -> None:
        self._totals: dict[Labels, tuple[float, int]] = {}
        self._starts: dict[Labels, int] = {}  # cumulative series -> newest start time ms seen
        self._lock = threading.Lock()
        self.max_series = max_series
        self.storage, self.flush = storage, flush
        self._synced = False
        self.resets = 0

    def apply(self, c: Converted) -> np.ndarray:
        """Sample values to store: deltas made cumulative; a 0 sample appended to `c` at the
        start time of every cumulative point that starts later than its series did before."""
        self._resets(c)
        values = np.asarray(c.values, dtype=np.float64)
        if not any(c.delta):
            return values
        with self._lock:
            order = sorted((i for i, d in enumerate(c.delta) if d), key=lambda i: c.ts[i])
            self._load({c.series[i] for i in order} - self._totals.keys())
            for i in order:
                s = c.series[i]
                total, last = self._totals.get(s, (0.0, -1))
                v = values[i]
                if np.isnan(v):
                    continue
                # A late delta still counts: the running total stays right for what follows.
                total += v
                values[i] = total
                if len(self._totals) >= self.max_series and s not in self._totals:
                    self._totals.clear()
                    self._synced = False  # totals written since may not be in storage yet
                self._totals[s] = (total, max(last, c.ts[i]))
        return values

    def _resets(self, c: Converted) -> None:
        """A newer start time = the sender's counter started again (Prometheus' OTLP receiver
        writes the created timestamp as a 0 sample): append that 0 sample to `c`. A series'
        first point only records its start time (after a restart of Heron too)."""
        if not any(c.start):
            return
        zeros: list[tuple[Labels, int]] = []
        with self._lock:
            starts = self._starts
            for i in sorted((i for i, st in enumerate(c.start) if st), key=c.ts.__getitem__):
                s, st = c.series[i], c.start[i]
                prev = starts.get(s)
                if prev is not None and st > prev and st < c.ts[i] and not np.isnan(c.values[i]):
                    zeros.append((s, st))
                if prev is None or st > prev:
                    if len(starts) >= self.max_series and prev is None:
                        starts.clear()
                    starts[s] = st
        self.resets += len(zeros)
        for s, st in zeros:
            c.series.append(s)
            c.ts.append(st)
            c.values.append(0.0)
            c.delta.append(False)
            c.start.append(0)

    def _load(self, missing: set[Labels]) -> None:
        if self.storage is None or not missing:
            return
        if not self._synced and self.flush is not None:
            self.flush()
            self._synced = True
        by_id = {series_id(s): s for s in missing}
        ids = list(by_id)
        db = self.storage.database
        for k in range(0, len(ids), 10_000):
            chunk = ",".join(str(i) for i in ids[k:k + 10_000])
            t = self.storage.execute(
                f"SELECT series_id, argMax(value, ts) AS v, max(ts) AS t FROM `{db}`.metric_samples "
                f"WHERE series_id IN ({chunk}) AND NOT isNaN(value) GROUP BY series_id")
            for sid, v, ts in zip(*(t.column(n).to_pylist() for n in ("series_id", "v", "t")), strict=True):
                self._totals[by_id[sid]] = (float(v), int(ts))
