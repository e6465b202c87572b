"""The vectorized series limiter decides exactly as admitting series one at a time would."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa

from heron.metrics import remote_write as rw
from heron.metrics.limits import LimitsConfig, SeriesLimiter
from heron.metrics.model import Labels, metric_name, series_id
from heron.metrics.proto import remote_pb2
from heron.metrics.writer import labels_map

MESSAGES = {"series_limit": "samples refused: active series limit 140 reached",
            "per_metric_series_limit": "samples refused: per-metric series limit 40 reached for m",
            "label_count": "labels, more than max_label_names_per_series 5",
            "label_value_length": "longer than max_label_value_length 10",
            "label_name_length": "longer than max_label_name_length 12"}


def reference(config: LimitsConfig, seen: set[int], per_metric: dict[str, int], series: list[Labels],
              counts: list[int]) -> tuple[list[bool], dict[str, int]]:
    """The limiter's rules one series at a time: labels first, then the global limit, then the
    per-metric one; returns the admitted mask and refused samples per reason."""
    keep, why = [], {}
    for labels, n in zip(series, counts, strict=True):
        sid = series_id(labels)
        if sid in seen:
            keep.append(True)
            continue
        name = metric_name(labels)
        reason = SeriesLimiter(config)._check_labels(labels)
        if reason is None and config.max_series and len(seen) >= config.max_series:
            reason = ("series_limit", "")
        if reason is None and config.max_series_per_metric and \
                per_metric.get(name, 0) >= config.max_series_per_metric:
            reason = ("per_metric_series_limit", "")
        if reason is None:
            seen.add(sid)
            per_metric[name] = per_metric.get(name, 0) + 1
            keep.append(True)
        else:
            keep.append(False)
            why[reason[0]] = why.get(reason[0], 0) + n
    return keep, why


def request(series: list[Labels]) -> bytes:
    req = remote_pb2.WriteRequest()
    for i, labels in enumerate(series):
        t = req.timeseries.add()
        for k, v in labels:
            t.labels.add(name=k, value=v)
        t.samples.add(timestamp=1_700_000_000_000 + i, value=float(i))
    return req.SerializeToString()


def test_vectorized_admit_equals_one_at_a_time() -> None:
    rng = random.Random(7)
    config = LimitsConfig(max_series=140, max_series_per_metric=40, max_label_names_per_series=5,
                          max_label_name_length=12, max_label_value_length=10)
    limiter = SeriesLimiter(config)
    seen: set[int] = set()
    per_metric: dict[str, int] = {}
    kinds: set[str] = set()
    for batch in range(6):
        series = []
        for _ in range(60):
            i = rng.randrange(400)
            labels = [("__name__", "m0" if i % 2 else f"m{1 + i % 3}"), ("i", str(i))]
            if i % 17 == 0:
                labels.append(("v", "é" * 6))  # 12 bytes, 6 characters: within the limit
            if i % 23 == 0:
                labels.append(("v", "x" * 11))  # over the value limit
            if i % 29 == 0:
                labels += [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]  # too many labels
            if i % 31 == 0:
                labels.append(("n" * 13, "1"))  # over the name limit
            series.append(tuple(sorted(dict(labels).items())))
        series.append(series[3])  # the same series twice in one write
        counts = [1 + (k % 3) for k in range(len(series))]
        want, why = reference(config, seen, per_metric, series, counts)
        raw = request(series)
        decoded = rw._decode_fast(raw, rw.LabelsCache())
        assert decoded.series == series and decoded.ids is not None
        use_flat = batch % 2 == 0  # with the decoder's label arrays, and without (scrape, OTLP)
        keep, message = limiter.admit(series, decoded.ids, np.asarray(counts),
                                      decoded.flat if use_flat else None)
        got = [True] * len(series) if keep is None else keep.tolist()
        assert got == want, batch
        parts = {next(k for k, text in MESSAGES.items() if text in part): int(part.split()[0])
                 for part in message.split("; ") if part}
        assert parts == why, batch
        kinds |= set(why)
    assert kinds == set(MESSAGES)  # every rule refused something
    assert len(limiter) == len(seen) == 140


def test_flat_series_rows_equal_labels_map() -> None:
    """metric_series rows built from the decoder's arrays equal those built from label tuples,
    also after a limit drops some series."""
    series = [tuple(sorted({"__name__": f"m{i % 3}", "i": str(i), "u": "héllo✓" * (i % 3)}.items()
                           if i % 3 else {"__name__": f"m{i % 3}", "i": str(i)}.items())) for i in range(40)]
    decoded = rw._decode_fast(request(series), rw.LabelsCache())
    assert decoded.flat is not None and decoded.ids is not None
    keep = np.arange(40) % 4 != 1
    flat = decoded.flat.filter(keep)
    kept = [s for s, k in zip(series, keep, strict=True) if k]
    positions = np.arange(len(kept))[::-1]
    sets = flat.sets_of(positions, len(kept))
    assert sets is not None
    ids = decoded.ids[keep][positions]
    table = flat.table(sets, ids)
    rows = [kept[i] for i in positions]
    assert table.column("series_id").to_pylist() == [series_id(r) for r in rows]
    assert table.column("metric").to_pylist() == [metric_name(r) for r in rows]
    assert table.column("labels").to_pylist() == labels_map(rows).to_pylist()
    assert table.schema.field("labels").type == pa.map_(pa.string(), pa.string())
    # A series without a set (decoded earlier, from the cache) means tuples are used.
    assert decoded.flat.filter(keep).sets_of(np.array([0, 1]), len(kept)) is not None
    partial = rw.FlatLabels(np.where(np.arange(40) == 5, -1, np.arange(40)), decoded.flat.offsets,
                            decoded.flat.names, decoded.flat.values, decoded.flat.metric)
    assert partial.sets_of(np.array([4, 5]), 40) is None
