"""Prometheus remote write 1.0 decoding: snappy-framed protobuf WriteRequest to flat arrays.

Decoding through protobuf objects costs a Python object per label and per sample (~11 µs per
series). This decoder walks the wire format instead: one short Python loop per series finds the
byte range of its labels and the offsets of its samples; the label range, as bytes, is the key of
a cache of decoded label sets (senders repeat the same series every request, so steady state
never decodes a label again); sample values and timestamps are decoded for all samples at once
with numpy (fixed64 doubles gathered by offset, varint timestamps combined column-wise).
Anything unusual (fields out of the usual order, omitted zero values) falls back to protobuf.

The same walk is done in C when the extension is built (`_rwdecode.c`, built by `pip install`;
`HERON_NO_NATIVE=1` turns it off): one pass over the bytes, the label-cache lookup, and for new
series their sorted label tuples, ids and flat label arrays. It takes a strict subset of what
the Python path takes and returns None for the rest, so the Python path stays the fallback, the
test oracle (tests/metrics/test_rwdecode_native.py) and the author of every error message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import cramjam
import numpy as np
import pyarrow as pa
from google.protobuf.message import DecodeError

from heron.exceptions import BadRequest
from heron.metrics import native
from heron.metrics.model import Labels, labels_from, series_id
from heron.metrics.proto import remote_pb2
from heron.metrics.remote_write_labels import Unusual, decode_labels
from heron.metrics.remote_write_wire import Unusual as WireUnusual
from heron.metrics.remote_write_wire import fields
from heron.metrics.remote_write_wire import varint as _varint
from heron.metrics.writer import FlatLabels

METADATA_TYPES = {0: "unknown", 1: "counter", 2: "gauge", 3: "histogram", 4: "gaugehistogram",
                  5: "summary", 6: "info", 7: "stateset"}


@dataclass
class DecodedWrite:
    series: list[Labels]
    counts: np.ndarray
    ts: np.ndarray
    values: np.ndarray
    metadata: list[tuple[str, str, str, str]] = field(default_factory=list)
    histograms_dropped: int = 0
    # Series ids computed while decoding (same hash as model.series_id) of the series decoded
    # fresh by this request (not from the label cache).
    new_series: list[Labels] = field(default_factory=list)
    new_ids: np.ndarray | None = None
    # (index into series, exemplar labels, timestamp ms, value)
    exemplars: list[tuple[int, Labels, int, float]] = field(default_factory=list)
    # The id of every series (None: the writer hashes the label sets), and the label arrays of
    # the series decoded fresh (the writer builds their metric_series rows from them).
    ids: np.ndarray | None = None
    flat: FlatLabels | None = None


class _Fallback(Exception):
    """The fast path met a layout it does not handle; decode with protobuf instead."""


class LabelsCache:
    """Raw label bytes -> validated sorted label set and its series id (bounded; cleared when
    full). One dict holds both, so a series costs one lookup (a big dict's lookups are mostly
    cache misses)."""

    def __init__(self, max_size: int = 1_000_000) -> None:
        self.entries: dict[bytes, tuple[Labels, int]] = {}
        self.max_size = max_size
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, keys: list[bytes]) -> tuple[list[Labels | None], list[int | None]]:
        """The label set and id of each key (None, None: not cached)."""
        found = list(map(self.entries.get, keys))
        misses = found.count(None)
        if not misses:
            return list(map(_FIRST, found)), list(map(_SECOND, found))  # type: ignore[arg-type]
        if misses == len(found):
            return [None] * misses, [None] * misses
        return ([e[0] if e is not None else None for e in found],
                [e[1] if e is not None else None for e in found])

    def decode(self, raw: bytes, index: int) -> Labels:
        """A series seen for the first time: its Label messages through protobuf (upb is faster
        than any per-byte Python loop here)."""
        ts = remote_pb2.TimeSeries()
        try:
            ts.ParseFromString(raw)
        except DecodeError as exc:
            raise BadRequest(f"protobuf: cannot decode WriteRequest ({exc})") from exc
        labels = _validate([(lb.name, lb.value) for lb in ts.labels], index)
        self.store([raw], [labels], [series_id(labels)])
        return labels

    def decode_many(self, raws: list[bytes], indexes: list[int]) -> list[Labels]:
        """New series of one request in one protobuf parse (a WriteRequest of label-only series)."""
        if len(raws) < 16:
            return [self.decode(r, i) for r, i in zip(raws, indexes, strict=True)]
        framed = b"".join(b"\x0a" + _encode_varint(len(r)) + r for r in raws)
        req = remote_pb2.WriteRequest()
        try:
            req.ParseFromString(framed)
        except DecodeError as exc:
            raise BadRequest(f"protobuf: cannot decode WriteRequest ({exc})") from exc
        out = [_validate([(lb.name, lb.value) for lb in t.labels], i)
               for t, i in zip(req.timeseries, indexes, strict=True)]
        self.store(raws, out, [series_id(labels) for labels in out])
        return out

    def store(self, raws: list[bytes], labels: list[Labels], ids: list[int]) -> None:
        with self.lock:
            if len(self.entries) + len(raws) >= self.max_size:
                self.entries.clear()
            self.entries.update(zip(raws, zip(labels, ids, strict=True), strict=True))


_FIRST, _SECOND = itemgetter(0), itemgetter(1)


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_CACHE = LabelsCache()


def _validate(pairs: list[tuple[str, str]], index: int) -> Labels:
    labels = tuple(sorted([kv for kv in pairs if kv[1]]))
    by_name = dict(labels)
    if "__name__" not in by_name:
        raise BadRequest(f"timeseries {index}: missing __name__ label ({by_name})")
    if len(by_name) != len(labels):
        raise BadRequest(f"timeseries {index}: duplicate label names in {dict(pairs)}")
    return labels


def decompress(body: bytes, encoding: str | None = "snappy") -> bytes:
    """Remote write bodies are block-format snappy (not framed); identity is accepted too."""
    if encoding and encoding.lower() == "snappy":
        try:
            return bytes(cramjam.snappy.decompress_raw(body))
        except Exception as exc:
            raise BadRequest(f"snappy: corrupt input ({exc})") from exc
    if encoding and encoding.lower() not in ("identity", ""):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}; remote write uses snappy")
    return body


NATIVE_ABI = 1  # _rwdecode.ABI_VERSION this code expects (a stale build is not used)
# Requests at least this large walk their bytes with the GIL released (HERON_RW_NOGIL_MIN).
NOGIL_MIN = int(os.environ.get("HERON_RW_NOGIL_MIN", str(256 << 10)))


def load_native() -> object | None:
    """The C decoder, or None (heron.metrics.native: off, not built, or stale)."""
    return native.load("_rwdecode", NATIVE_ABI)


_native = load_native()


def decode_write_request(body: bytes, encoding: str | None = "snappy",
                         cache: LabelsCache | None = None) -> DecodedWrite:
    body = decompress(body, encoding)
    cache = cache if cache is not None else _CACHE  # an empty cache is falsy
    if _native is not None:
        decoded = decode_native(body, cache)
        if decoded is not None:
            return decoded
    return decode_python(body, cache)


def decode_python(body: bytes, cache: LabelsCache) -> DecodedWrite:
    """The pure-Python decoder (numpy walk, protobuf for what it leaves): the C decoder's
    fallback and test oracle."""
    try:
        return _decode_fast(body, cache)
    except (_Fallback, IndexError):
        return _decode_protobuf(body)


def decode_native(buf: bytes, cache: LabelsCache) -> DecodedWrite | None:
    """The C decoder (`_rwdecode.decode_v1`) as a DecodedWrite; None when it leaves the request
    to the Python path (unusual layout, or anything invalid: that path words the error). New
    series go into `cache` as the Python path puts them."""
    out = _native.decode_v1(buf, cache.entries, len(buf) >= NOGIL_MIN)  # type: ignore[attr-defined]
    if out is None:
        return None
    (series, ids, counts, ts, values, hist, ex_ranges, meta_ranges, rows, keys, new_series, new_ids,
     names, name_offsets, label_values, value_offsets, metrics, metric_offsets, set_offsets) = out
    try:
        metadata, exemplars = _metadata_and_exemplars(buf, meta_ranges, ex_ranges)
    except BadRequest:
        return None
    fresh_ids = flat = None
    if rows is not None:
        fresh_ids = np.frombuffer(new_ids, dtype=np.uint64)
        flat = FlatLabels(np.frombuffer(rows, dtype=np.int64), np.frombuffer(set_offsets, dtype=np.int32),
                          _arrow_strings(names, name_offsets), _arrow_strings(label_values, value_offsets),
                          _arrow_strings(metrics, metric_offsets))
        cache.store(keys, new_series, fresh_ids.tolist())
    return DecodedWrite(series, np.frombuffer(counts, dtype=np.int64), np.frombuffer(ts, dtype=np.int64),
                        np.frombuffer(values, dtype=np.float64), metadata, hist, new_series, fresh_ids,
                        exemplars, np.frombuffer(ids, dtype=np.uint64), flat)


def _arrow_strings(data: bytearray, offsets: bytearray) -> pa.StringArray:
    """A string array over the C decoder's buffers (UTF-8 already checked there), no copy."""
    return pa.StringArray.from_buffers(len(offsets) // 4 - 1, pa.py_buffer(offsets), pa.py_buffer(data))


def _top_level(buf: bytes) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The TimeSeries (start, end arrays) and metadata ranges of a request, one Python step per
    field; raises BadRequest on a truncated field and _Fallback on other fields."""
    n = len(buf)
    pos = 0
    ts_ranges: list[int] = []  # start, end of each TimeSeries
    meta_ranges: list[tuple[int, int]] = []
    varint = _varint
    append = ts_ranges.append
    while pos < n:
        tag = buf[pos]
        length = buf[pos + 1]
        if length < 0x80:
            body = pos + 2
        else:
            length, body = varint(buf, pos + 1)
        end = body + length
        if end > n:
            raise BadRequest("protobuf: cannot decode WriteRequest (truncated message)")
        if tag == 0x0A:
            append(body)
            append(end)
        elif tag == 0x1A:  # metadata
            meta_ranges.append((body, end))
        else:
            raise _Fallback
        pos = end
    bounds = np.asarray(ts_ranges, dtype=np.int64).reshape(-1, 2)
    return bounds[:, 0], bounds[:, 1], meta_ranges


def _decode_fast(buf: bytes, cache: LabelsCache) -> DecodedWrite:
    """Top-level messages in a Python loop (one step per series), the fields inside every
    series with arrays (heron.metrics.remote_write_wire), labels through the cache."""
    begin, finish, meta_ranges = _top_level(buf)
    arr = np.frombuffer(buf + b"\x00" * 20, dtype=np.uint8)
    try:
        fs, ft, fb, fl = fields(buf, arr, begin, finish)
    except WireUnusual:
        raise _Fallback from None
    kind = np.where(ft == 0x0A, 0, np.where(ft == 0x12, 1, 2))  # labels, samples, the rest
    if ((fs[1:] == fs[:-1]) & (kind[1:] < kind[:-1])).any():
        raise _Fallback  # labels or samples after other fields: any order is legal protobuf
    label_end = begin.copy()
    lab = kind == 0
    if lab.any():
        ls, le = fs[lab], fb[lab] + fl[lab]
        last = np.ones(len(ls), dtype=bool)
        last[:-1] = ls[1:] != ls[:-1]
        label_end[ls[last]] = le[last]
    smp = kind == 1
    starts, lengths = fb[smp], fl[smp]
    counts = np.bincount(fs[smp], minlength=len(begin))
    hist = int(np.count_nonzero(ft == 0x22))
    exm = ft == 0x1A
    ex_ranges = list(zip(fs[exm].tolist(), fb[exm].tolist(), (fb[exm] + fl[exm]).tolist(), strict=True))
    raws = [buf[a:z] for a, z in zip(begin.tolist(), label_end.tolist(), strict=True)]
    found, id_list = cache.lookup(raws)
    series: list[Labels] = found  # type: ignore[assignment]  # None: a miss, filled in below
    new_series: list[Labels] = []
    new_ids = None
    flat = None
    ids = None
    all_new = series.count(None) == len(series)  # type: ignore[arg-type]  # a sender's first requests
    indexes: Sequence[int] = range(len(series)) if all_new else \
        [i for i, labels in enumerate(series) if labels is None]
    if indexes:
        if not all_new:
            raws = [raws[i] for i in indexes]
        try:
            if len(raws) < 16:
                raise Unusual
            where = np.asarray(indexes, dtype=np.int64)
            at, stop = (begin, label_end) if all_new else (begin[where], label_end[where])
            new_series, new_ids, flat = decode_labels(arr, at, stop)
            flat = FlatLabels(where, flat.offsets, flat.names, flat.values, flat.metric)
            cache.store(raws, new_series, new_ids.tolist())
        except Unusual:
            new_series = cache.decode_many(raws, list(indexes))
        if all_new:
            series = new_series
            ids = new_ids if new_ids is not None else \
                np.fromiter(map(series_id, new_series), np.uint64, len(new_series))
        else:
            fill = new_ids.tolist() if new_ids is not None else [series_id(labels) for labels in new_series]
            for i, labels, sid in zip(indexes, new_series, fill, strict=True):
                series[i], id_list[i] = labels, sid
    if ids is None:
        if None in id_list:  # the cache was cleared by another thread between the two lookups
            id_list = [series_id(labels) if sid is None else sid
                       for labels, sid in zip(series, id_list, strict=True)]
        ids = np.fromiter(id_list, np.uint64, len(id_list))  # type: ignore[arg-type]
    ts, values = _samples(arr, starts, lengths)
    metadata, exemplars = _metadata_and_exemplars(buf, meta_ranges, ex_ranges)
    return DecodedWrite(series, np.asarray(counts, dtype=np.int64), ts, values, metadata, hist,
                        new_series if new_ids is not None else [], new_ids, exemplars, ids, flat)


def _metadata_and_exemplars(buf: bytes, meta_ranges: list[tuple[int, int]], ex_ranges: list[tuple[int, int, int]]
                            ) -> tuple[list[tuple[str, str, str, str]], list[tuple[int, Labels, int, float]]]:
    """The MetricMetadata messages at `meta_ranges` and the Exemplars (series index, start, end)
    at `ex_ranges` (few per request: through protobuf)."""
    metadata = []
    for a, b in meta_ranges:
        m = remote_pb2.MetricMetadata()
        try:
            m.ParseFromString(buf[a:b])
        except DecodeError as exc:
            raise BadRequest(f"protobuf: cannot decode WriteRequest ({exc})") from exc
        metadata.append((m.metric_family_name, METADATA_TYPES.get(m.type, "unknown"), m.help, m.unit))
    exemplars = []
    for i, a, b in ex_ranges:
        e = remote_pb2.Exemplar()
        try:
            e.ParseFromString(buf[a:b])
        except DecodeError as exc:
            raise BadRequest(f"protobuf: cannot decode WriteRequest ({exc})") from exc
        exemplars.append((i, labels_from([(lb.name, lb.value) for lb in e.labels]), e.timestamp, e.value))
    return metadata, exemplars


_SHIFTS = (np.arange(10, dtype=np.uint64) * np.uint64(7))


def _samples(arr: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized Sample decoding: `09 <fixed64 value> 10 <varint ts>`, or `10 <varint ts>` when
    the value is 0 (proto3 omits it). `arr`: the request as uint8, zero-padded by 20 bytes."""
    if not len(starts):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    s = np.asarray(starts, dtype=np.int64)
    ln = np.asarray(lengths, dtype=np.int64)
    has_value = arr[s] == 0x09
    ts_at = np.where(has_value, s + 10, s + 1)
    vlen = np.where(has_value, ln - 10, ln - 1)
    tag_ok = np.where(has_value, arr[s + 9], arr[s]) == 0x10
    if not (tag_ok & (vlen >= 1) & (vlen <= 10)).all():
        raise _Fallback  # timestamp 0 omitted, or unknown fields: rare
    gathered = arr[s[:, None] + np.arange(1, 9)].copy().view("<f8").reshape(-1)
    values = np.where(has_value, gathered, 0.0)
    raw = arr[ts_at[:, None] + np.arange(10)].astype(np.uint64)
    if (raw[np.arange(len(s)), vlen - 1] & np.uint64(0x80)).any():
        raise _Fallback
    inside = np.arange(10)[None, :] < vlen[:, None]
    if ((np.arange(10)[None, :] < (vlen - 1)[:, None]) & ((raw & np.uint64(0x80)) == 0)).any():
        raise _Fallback  # the varint ends early: more fields follow (e.g. a repeated timestamp)
    parts = np.where(inside, (raw & np.uint64(0x7F)) << _SHIFTS, np.uint64(0))
    ts = np.bitwise_or.reduce(parts, axis=1).view(np.int64)
    return ts, values


def _decode_protobuf(body: bytes) -> DecodedWrite:
    """The reference path: protobuf objects (any field order, omitted defaults)."""
    req = remote_pb2.WriteRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"protobuf: cannot decode WriteRequest ({exc})") from exc
    series: list[Labels] = []
    counts = np.empty(len(req.timeseries), dtype=np.int64)
    ts_parts: list[list[int]] = []
    val_parts: list[list[float]] = []
    hist = 0
    exemplars = []
    for i, t in enumerate(req.timeseries):
        series.append(_validate([(lb.name, lb.value) for lb in t.labels], i))
        counts[i] = len(t.samples)
        exemplars += [(i, labels_from([(lb.name, lb.value) for lb in e.labels]), e.timestamp, e.value)
                      for e in t.exemplars]
        ts_parts.append([s.timestamp for s in t.samples])
        val_parts.append([s.value for s in t.samples])
        hist += len(t.histograms)
    total = int(counts.sum())
    ts = np.fromiter((x for part in ts_parts for x in part), dtype=np.int64, count=total)
    values = np.fromiter((x for part in val_parts for x in part), dtype=np.float64, count=total)
    metadata = [(m.metric_family_name, METADATA_TYPES.get(m.type, "unknown"), m.help, m.unit)
                for m in req.metadata]
    return DecodedWrite(series, counts, ts, values, metadata, hist, exemplars=exemplars)
