"""Remote write 2.0 decoded on the wire, like 1.0 (heron.metrics.remote_write), not through
protobuf objects.

A 2.0 request carries a symbols table and, per series, packed `labels_refs` into it. Here the
symbols become one Arrow string array (UTF-8 checked in C); the fields of every series are found
in lockstep (`remote_write_wire.fields`); all label refs of the request are decoded as varints at
once with numpy; a series' canonical bytes `name\\xffvalue\\xff...` (Arrow joins them) are the key
of a label cache, so a series seen before costs no label decoding and no hashing, and new ones
are hashed and built with the same array steps as 1.0 (`remote_write_labels`). Samples have the
1.0 layout and share its numpy decoder. Anything unusual (refs out of range or odd, unsorted or
duplicate names, a missing `__name__`, `created_timestamp`, invalid UTF-8) raises `Fallback`
and the protobuf path decodes it, with its exact error messages.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa

from heron.metrics.model import Labels, labels_from
from heron.metrics.proto import write_v2_pb2
from heron.metrics.remote_write import METADATA_TYPES, DecodedWrite, LabelsCache, _samples
from heron.metrics.remote_write_labels import Unusual, _gather, _label_sets, _strings, canonical, hash_ranges
from heron.metrics.remote_write_wire import Unusual as WireUnusual
from heron.metrics.remote_write_wire import fields, varint
from heron.metrics.writer import FlatLabels


class Fallback(Exception):
    """A layout or content the array path leaves to protobuf."""


CACHE = LabelsCache()  # canonical label bytes -> label set and series id


def _packed_varints(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every varint of the concatenated packed fields `data`: (values, index of the last byte
    of each). Varints of more than 5 bytes (refs are uint32) raise Fallback."""
    last = np.flatnonzero(data < 0x80)
    first = np.empty(len(last), dtype=np.int64)
    first[:1] = 0
    first[1:] = last[:-1] + 1
    if len(last) and ((last - first) >= 5).any():
        raise Fallback
    owner = np.repeat(np.arange(len(last)), last - first + 1)
    shift = (np.arange(len(owner)) - first[owner]) * 7
    parts = (data[:len(owner)].astype(np.int64) & 0x7F) << shift
    return np.add.reduceat(parts, first) if len(first) else first, last


def decode(buf: bytes, cache: LabelsCache = CACHE) -> DecodedWrite:
    n = len(buf)
    pos = 0
    sym: list[int] = []  # start, end of each symbol
    ser: list[int] = []  # start, end of each TimeSeries
    if not n:
        raise Fallback
    while pos < n:
        tag = buf[pos]
        length, body = varint(buf, pos + 1)
        end = body + length
        if end > n:
            raise Fallback
        if tag == 0x22:
            sym += (body, end)
        elif tag == 0x2A:
            ser += (body, end)
        else:
            raise Fallback
        pos = end
    arr = np.frombuffer(buf + b"\x00" * 20, dtype=np.uint8)
    sb = np.asarray(sym, dtype=np.int64).reshape(-1, 2)
    if not len(sb) or sb[0, 1] != sb[0, 0]:
        raise Fallback  # symbols[0] must be "": the protobuf path says so
    try:
        symbols = _strings(arr, sb[:, 0], sb[:, 1] - sb[:, 0])
    except Unusual:
        raise Fallback from None
    sym_len = sb[:, 1] - sb[:, 0]
    bounds = np.asarray(ser, dtype=np.int64).reshape(-1, 2)
    count = len(bounds)
    try:
        fs, ft, fb, fl = fields(buf, arr, bounds[:, 0], bounds[:, 1])
    except WireUnusual:
        raise Fallback from None
    if not ((ft == 0x0A) | (ft == 0x12) | (ft == 0x1A) | (ft == 0x22) | (ft == 0x2A)).all():
        raise Fallback
    # Label refs: every packed chunk of every series, decoded together.
    lab = ft == 0x0A
    data, offsets = _gather(arr, fb[lab], fl[lab])
    terminal = data < 0x80
    ends = offsets[1:][fl[lab] > 0].astype(np.int64)
    if len(ends) and not terminal[ends - 1].all():
        raise Fallback  # a chunk ending inside a varint
    refs, _ = _packed_varints(data)
    done = np.concatenate(([0], np.cumsum(terminal)))  # varints finished before each byte
    per_chunk = done[offsets[1:]] - done[offsets[:-1]]
    n_refs = np.bincount(fs[lab], weights=per_chunk, minlength=count).astype(np.int64)
    if (n_refs % 2).any() or (len(refs) and refs.max() >= len(sym_len)):
        raise Fallback
    name_ref, value_ref = refs[0::2], refs[1::2]
    owner = np.repeat(np.arange(count), n_refs // 2)
    keep = sym_len[value_ref] > 0  # an empty value: the label is absent
    name_ref, value_ref, owner = name_ref[keep], value_ref[keep], owner[keep]
    # Sortedness and __name__ on integer ranks of the name symbols.
    used = np.unique(name_ref)
    words_used = symbols.take(pa.array(used)).to_pylist()
    order = sorted(range(len(used)), key=words_used.__getitem__)
    words = [words_used[i] for i in order]
    rank = np.empty(len(used), dtype=np.int64)
    rank[order] = np.arange(len(used))
    codes = rank[np.searchsorted(used, name_ref)]
    same = owner[1:] == owner[:-1]
    if (same & ~(codes[1:] > codes[:-1])).any() or "__name__" not in words:
        raise Fallback
    is_name = codes == words.index("__name__")
    if (np.bincount(owner[is_name], minlength=count) != 1).any():
        raise Fallback
    lb = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=count), out=lb[1:])
    names = symbols.take(pa.array(name_ref))
    values = symbols.take(pa.array(value_ref))
    view, cuts = canonical(names, values, lb)
    keys = [bytes(view[a:z]) for a, z in itertools.pairwise(cuts)]
    found, id_list = cache.lookup(keys)
    series: list[Labels] = found  # type: ignore[assignment]  # None: a miss, filled in below
    miss = [i for i, labels in enumerate(series) if labels is None]
    if None in id_list:  # the cache was cleared by another thread between the two lookups
        miss = sorted(set(miss) | {i for i, sid in enumerate(id_list) if sid is None})
    flat = None
    if miss:
        m = np.asarray(miss, dtype=np.int64)
        at = np.zeros(count, dtype=bool)
        at[m] = True
        sel = at[owner]
        mb = np.zeros(len(m) + 1, dtype=np.int64)
        np.cumsum(np.diff(lb)[m], out=mb[1:])
        new_ids = hash_ranges(view, cuts, miss)
        m_names, m_values = names.filter(pa.array(sel)), values.filter(pa.array(sel))
        new_series = _label_sets(codes[sel], words, m_values, mb)
        cache.store([keys[i] for i in miss], new_series, new_ids.tolist())
        for i, labels, sid in zip(miss, new_series, new_ids.tolist(), strict=True):
            series[i], id_list[i] = labels, sid
        flat = FlatLabels(m, mb.astype(np.int32), m_names, m_values, m_values.filter(pa.array(is_name[sel])))
    smp = ft == 0x12
    ts, vals = _samples(arr, fb[smp], fl[smp])
    counts = np.bincount(fs[smp], minlength=count).astype(np.int64)
    sym_at = sb[:, 0].tolist()
    sym_end = sb[:, 1].tolist()

    def text(ref: int) -> str:
        if ref >= len(sym_at):
            raise Fallback
        return buf[sym_at[ref]:sym_end[ref]].decode()

    exemplars = []
    for i, a, length in zip(*(x[ft == 0x22].tolist() for x in (fs, fb, fl)), strict=True):
        e = write_v2_pb2.Exemplar.FromString(buf[a:a + length])
        eref = list(e.labels_refs)
        if len(eref) % 2:
            raise Fallback
        exemplars.append((i, labels_from([(text(eref[j]), text(eref[j + 1])) for j in range(0, len(eref), 2)]),
                          e.timestamp, e.value))
    metadata: dict[str, tuple[str, str, str, str]] = {}
    for i, a, length in zip(*(x[ft == 0x2A].tolist() for x in (fs, fb, fl)), strict=True):
        md = write_v2_pb2.Metadata.FromString(buf[a:a + length])
        if md.type or md.help_ref or md.unit_ref:
            name = dict(series[i])["__name__"]
            metadata[name] = (name, METADATA_TYPES.get(md.type, "unknown"), text(md.help_ref), text(md.unit_ref))
    ids = np.fromiter(id_list, np.uint64, count)  # type: ignore[arg-type]
    return DecodedWrite(series, counts, ts, vals, list(metadata.values()), int(np.count_nonzero(ft == 0x1A)),
                        exemplars=exemplars, ids=ids, flat=flat)
