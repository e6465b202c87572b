"""The C remote-write decoder (heron/metrics/_rwdecode.c) against the pure-Python one, its oracle.

Requests are built byte by byte (so that layouts protobuf would never write appear too: omitted
zero values, fields out of order, unknown fields, long varints, invalid UTF-8), then cut and
bit-flipped. Whatever the input, the decoder as served (C, falling back to Python) must give the
same DecodedWrite as the Python path alone, bit for bit, or the same BadRequest text, and leave
the label cache in the same state; and it must never crash.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from heron.exceptions import BadRequest
from heron.metrics import remote_write as rw
from heron.metrics.model import STALE_NAN_BITS, series_id

native = pytest.mark.skipif(rw._native is None, reason="HERON_NO_NATIVE=1 (checked by test_native.py)")


@native
@given(st.binary(max_size=600))
@example(b"")
@example(b"x" * 128)
@example(b"x" * 129)
def test_bundled_blake2b_equals_hashlib(data: bytes) -> None:
    want = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    assert rw._native.blake2b64(data) == want  # type: ignore[attr-defined]


# --- requests built on the wire -------------------------------------------------------------

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


NAMES = [b"__name__", b"job", b"instance", b"a", b"\xc3\xa9", b"", b"le", b"\xff", b"__name__"]
VALUES = [b"m", b"x", b"", b"h\xc3\xa9llo\xe2\x9c\x93", b"1", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"y" * 200]

label_st = st.tuples(st.sampled_from(NAMES), st.one_of(st.sampled_from(VALUES), st.text(max_size=6).map(str.encode)),
                     st.sampled_from(["nv", "nv", "nv", "vn", "n", "nvv"]))
sample_st = st.tuples(st.one_of(st.sampled_from([0, STALE_NAN_BITS, 0x7FF8000000000001, 0xFFF0000000000000,
                                                 struct.unpack("<Q", struct.pack("<d", 1.5))[0]]),
                                st.integers(0, (1 << 64) - 1)),
                      st.one_of(st.integers(-(1 << 63), (1 << 63) - 1), st.sampled_from([0, 1, 1_700_000_000_000])),
                      st.sampled_from(["vt", "vt", "vt", "t", "tv", "v", "vtt"]))


def label_bytes(name: bytes, value: bytes, layout: str) -> bytes:
    parts = {"n": field(1, name), "v": field(2, value)}
    return field(1, b"".join(parts[c] for c in layout))


def sample_bytes(bits: int, ts: int, layout: str) -> bytes:
    parts = {"v": b"\x09" + struct.pack("<Q", bits), "t": b"\x10" + varint(ts)}
    return field(2, b"".join(parts[c] for c in layout))


@st.composite
def clean_series_st(draw: Any) -> bytes:
    """A series as senders write it: distinct names with __name__, valid UTF-8, sorted (mostly),
    samples `09 <f64> 10 <ts>` or, for 0.0, `10 <ts>`."""
    names = draw(st.sets(st.sampled_from([b"job", b"instance", b"a", b"\xc3\xa9", b"", b"le", b"zz"]), max_size=5))
    labels = [(b"__name__", draw(st.sampled_from([b"m", b"m2", b"up"])))]
    labels += [(n, draw(st.one_of(st.sampled_from([b"x", b"", b"1"]), st.text(max_size=8).map(str.encode))))
               for n in names]
    labels = draw(st.permutations(labels)) if draw(st.integers(0, 5)) == 0 else sorted(labels)
    body = b"".join(label_bytes(n, v, "nv") for n, v in labels)
    for bits, ts, _ in draw(st.lists(sample_st, max_size=3)):
        body += sample_bytes(bits, ts or 1, "vt" if bits else "t")
    return body


@st.composite
def odd_series_st(draw: Any) -> bytes:
    """Anything the wire allows, and some it does not."""
    labels = draw(st.lists(label_st, max_size=6))
    if draw(st.booleans()):
        labels = [(b"__name__", draw(st.sampled_from([b"m", b"m2", b"up"])), "nv"), *labels]
        if draw(st.booleans()):
            labels.sort(key=lambda x: (x[0], x[1]))
    body = b"".join(label_bytes(*lb) for lb in labels)
    samples = b"".join(sample_bytes(*s) for s in draw(st.lists(sample_st, max_size=3)))
    if draw(st.integers(0, 9)) == 0:  # labels after samples
        return samples + body
    return body + samples


@st.composite
def series_st(draw: Any, odd: int) -> bytes:
    """A clean series (or, one time in `odd`, an odd one), then maybe exemplars, histograms,
    unknown fields or a sample after those."""
    body = draw(odd_series_st() if draw(st.integers(1, odd)) == 1 else clean_series_st())
    extra = ["exemplar", "histogram", "unknown", "sample"] if draw(st.integers(1, odd)) <= 4 else ["exemplar", "histogram"]
    for kind in draw(st.lists(st.sampled_from(extra), max_size=2)) if draw(st.integers(0, 2)) == 0 else []:
        if kind == "exemplar":
            body += field(3, label_bytes(b"trace_id", b"abc", "nv") + b"\x11" + struct.pack("<d", 0.5) + b"\x18\x07")
        elif kind == "histogram":
            body += field(4, b"\x19" + struct.pack("<d", 1.0))
        elif kind == "unknown" and draw(st.integers(0, 3)) == 0:
            body += field(9, b"zz")
        elif kind == "sample":
            body += sample_bytes(4, 5, "vt")
    return body


@st.composite
def request_st(draw: Any) -> bytes:
    odd = draw(st.sampled_from([10**6, 10**6, 40, 8]))
    size = draw(st.sampled_from([0, 0, 16, 17]))  # 16 new series or more: the Python path's array walk
    out = b"".join(field(1, s) for s in draw(st.lists(series_st(odd), min_size=size, max_size=size + 24)))
    if draw(st.integers(0, 3)) == 0:
        out += field(3, b"\x08\x01" + field(2, b"m") + field(4, b"Help."))
    if draw(st.integers(0, 39)) == 0:
        out += field(5, b"?")
    return out


@st.composite
def mutated_st(draw: Any) -> bytes:
    raw = draw(request_st())
    if not raw:
        return raw
    for _ in range(draw(st.integers(0, 3))):
        buf = bytearray(raw)
        op = draw(st.sampled_from(["cut", "flip", "byte", "insert"]))
        at = draw(st.integers(0, len(buf) - 1))
        if op == "cut":
            buf = buf[:at]
        elif op == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            buf[at] = draw(st.integers(0, 255))
        else:
            buf[at:at] = draw(st.binary(min_size=1, max_size=11))
        raw = bytes(buf)
        if not raw:
            break
    return raw


# --- the comparison -------------------------------------------------------------------------

def served(raw: bytes, cache: rw.LabelsCache) -> rw.DecodedWrite:
    """As decode_write_request does after decompression: C, else the Python path."""
    return rw.decode_native(raw, cache) or rw.decode_python(raw, cache)


def outcome(decode: Any, raw: bytes, cache: rw.LabelsCache) -> tuple[Any, ...]:
    try:
        d = decode(raw, cache)
    except BadRequest as exc:
        return ("error", str(exc))
    ids = d.ids.tolist() if d.ids is not None else [series_id(s) for s in d.series]
    if d.flat is not None:  # the flat label arrays describe the same label sets and ids
        names, values = d.flat.names.to_pylist(), d.flat.values.to_pylist()
        offsets = d.flat.offsets.tolist()
        for j, row in enumerate(d.flat.rows.tolist()):
            pairs = tuple(zip(names[offsets[j]:offsets[j + 1]], values[offsets[j]:offsets[j + 1]], strict=True))
            assert pairs == d.series[row]
            assert d.flat.metric[j].as_py() == dict(pairs)["__name__"]
    if d.new_ids is not None:
        assert d.new_ids.tolist() == [series_id(s) for s in d.new_series]
    assert d.ts.dtype == np.int64 and d.values.dtype == np.float64 and d.counts.dtype == np.int64
    return ("ok", d.series, ids, d.counts.tolist(), d.ts.tolist(), d.values.view(np.uint64).tolist(),
            d.metadata, d.exemplars, d.histograms_dropped)


def check(raw: bytes) -> None:
    mine, ref = rw.LabelsCache(), rw.LabelsCache()
    for _ in range(2):  # new series, then from the label cache
        assert outcome(served, raw, mine) == outcome(rw.decode_python, raw, ref)
        assert mine.entries == ref.entries


@native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_st())
def test_c_decoder_equals_python_decoder(raw: bytes) -> None:
    check(raw)


@native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_st())
def test_c_decoder_equals_python_decoder_on_cut_and_flipped_bodies(raw: bytes) -> None:
    check(raw)


@native
@pytest.mark.parametrize("raw", [
    b"\x0a", b"\x0a\x05", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02",
    field(1, field(1, field(1, b"__name__") + field(2, b"m")) + b"\x12\x0b\x09" + b"\x00" * 8 + b"\x10\xff"),
    field(1, field(1, field(1, b"__name__") + field(2, b"m")) + field(2, b"\x10" + b"\xff" * 9 + b"\x02")),
    field(1, field(1, field(1, b"__name__") + field(2, b"m")) + field(2, b"\x10" + b"\x80" * 10 + b"\x00")),
    field(1, field(1, field(1, b"__name__") + field(2, b"m") + field(2, b"")) + field(2, b"\x10\x01")),
    field(1, field(1, field(1, b"__name__") + field(2, b"m")) + field(1, field(1, b"__name__") + field(2, b"n"))),
    *(field(1, label_bytes(b"__name__", b"m", "nv") + label_bytes(b"a", bad, "nv") + sample_bytes(1, 2, "vt"))
      for bad in (b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xc3")),
    field(1, label_bytes(b"__name__", b"m", "nv") + label_bytes(b"\xff", b"", "nv") + sample_bytes(1, 2, "vt")),
    field(1, label_bytes(b"__name__", b"m", "nv") + field(2, b"\x10\x01\x10\x02")),
    field(1, label_bytes(b"__name__", b"m", "nv") + field(2, b"\x09" + b"\x00" * 8 + b"\x10\x01\x10\x02")),
    field(1, label_bytes(b"__name__", b"m", "nv") + sample_bytes(1, 2, "vt") + label_bytes(b"a", b"b", "nv")),
    field(1, label_bytes(b"__name__", b"m", "nv") + field(4, b"\xff\xff") + sample_bytes(1, 2, "vt")),
    field(1, label_bytes(b"__name__", b"m", "nv") + field(4, b"\xff\xff")),
])
def test_c_decoder_on_edge_layouts(raw: bytes) -> None:
    check(raw)


@native
def test_every_cut_and_bit_flip_of_a_small_request() -> None:
    """Exhaustive over one request: every prefix, and every single bit flipped."""
    raw = (field(1, label_bytes(b"__name__", b"m", "nv") + label_bytes(b"job", b"j\xc3\xa9", "nv")
                 + sample_bytes(0x3FF8000000000000, 1_700_000_000_000, "vt") + sample_bytes(0, 7, "t")
                 + field(3, label_bytes(b"trace_id", b"abc", "nv") + b"\x18\x07") + field(4, b"\x19" + b"\x00" * 8))
           + field(1, label_bytes(b"__name__", b"up", "nv") + sample_bytes(1, 300, "vt"))
           + field(3, b"\x08\x01" + field(2, b"m") + field(4, b"Help.")))
    for k in range(len(raw)):
        check(raw[:k])
    for bit in range(8 * len(raw)):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        check(bytes(flipped))


def test_repeated_timestamp_in_a_sample_decodes_as_protobuf_does() -> None:
    """Legal protobuf (the last value of a field wins), which the numpy sample decoder used to
    read as one long varint (ts 34817 instead of 2)."""
    for sample in (b"\x10\x01\x10\x02", b"\x09" + b"\x00" * 8 + b"\x10\x01\x10\x02"):
        raw = field(1, label_bytes(b"__name__", b"m", "nv") + field(2, sample)) * 20
        assert rw.decode_write_request(raw, "identity", rw.LabelsCache()).ts.tolist() == [2] * 20
        assert rw.decode_python(raw, rw.LabelsCache()).ts.tolist() == rw._decode_protobuf(raw).ts.tolist()


def test_invalid_utf8_name_of_an_empty_label_is_refused_as_protobuf_does() -> None:
    """The numpy label walk (16 new series or more) dropped empty labels before checking UTF-8,
    and so took a name protobuf refuses."""
    for n in (5, 20):
        raw = b"".join(field(1, label_bytes(b"__name__", b"m", "nv") + label_bytes(b"i", b"%d" % i, "nv")
                             + label_bytes(b"\xff", b"", "nv") + sample_bytes(1, 2, "vt")) for i in range(n))
        with pytest.raises(BadRequest, match="protobuf: cannot decode WriteRequest"):
            rw.decode_python(raw, rw.LabelsCache())
        with pytest.raises(BadRequest, match="protobuf: cannot decode WriteRequest"):
            rw.decode_write_request(raw, "identity", rw.LabelsCache())
        ok = raw.replace(b"\xff", b"z")
        assert len(rw.decode_python(ok, rw.LabelsCache()).series) == n


@native
def test_c_decoder_takes_the_usual_requests() -> None:
    """What senders send is decoded in C (not silently left to Python): new series with their
    ids and label arrays, then every series from the cache; label pairs are shared."""
    series = [[(b"__name__", b"m%d" % (i % 3)), (b"i", b"%d" % i), (b"job", b"j"), (b"z", b"")] for i in range(50)]
    raw = b"".join(field(1, b"".join(label_bytes(n, v, "nv") for n, v in s) + sample_bytes(i, 1000 + i, "vt"))
                   for i, s in enumerate(series))
    cache = rw.LabelsCache()
    first = rw.decode_native(raw, cache)
    assert first is not None and first.flat is not None and first.new_ids is not None
    assert first.series[7] == (("__name__", "m1"), ("i", "7"), ("job", "j"))
    assert first.series[0][2] is first.series[1][2]  # ("job", "j") made once
    assert first.ids is not None and first.ids.tolist() == [series_id(s) for s in first.series]
    assert first.ts.tolist() == list(range(1000, 1050)) and len(cache) == 50
    again = rw.decode_native(raw, cache)
    assert again is not None and again.flat is None and again.new_ids is None
    assert again.series == first.series and again.series[3] is first.series[3]
    check(raw)


@native
def test_threads_with_the_gil_released_share_one_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests decoded at once in threads, walking with the GIL released, against one cache."""
    monkeypatch.setattr(rw, "NOGIL_MIN", 0)
    raws = [b"".join(field(1, label_bytes(b"__name__", b"t", "nv") + label_bytes(b"i", b"%d" % (i % 700), "nv")
                           + sample_bytes(i, 1000 + k, "vt")) for i in range(k * 300, k * 300 + 900))
            for k in range(8)]
    cache = rw.LabelsCache()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda r: rw.decode_native(r, cache), raws * 3))
    for raw, d in zip(raws * 3, got, strict=True):
        assert d is not None
        ref = rw.decode_python(raw, rw.LabelsCache())
        assert d.series == ref.series and d.ts.tolist() == ref.ts.tolist()
        assert d.ids is not None and ref.ids is not None and d.ids.tolist() == ref.ids.tolist()
    assert len(cache) == 700


@native
def test_threads_while_a_small_cache_is_cleared_under_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full cache is cleared by whichever thread stores next; the others' lookups and stores
    around it still give every series its own labels and id."""
    monkeypatch.setattr(rw, "NOGIL_MIN", 0)
    raws = [b"".join(field(1, label_bytes(b"__name__", b"c", "nv") + label_bytes(b"i", b"%d" % i, "nv")
                           + sample_bytes(i, 5, "vt")) for i in range(k * 250, k * 250 + 400)) for k in range(6)]
    refs = [rw.decode_python(raw, rw.LabelsCache()) for raw in raws]
    cache = rw.LabelsCache(max_size=700)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda r: rw.decode_native(r, cache), raws * 4))
    for d, ref in zip(got, refs * 4, strict=True):
        assert d is not None and d.series == ref.series
        assert d.ids is not None and ref.ids is not None and d.ids.tolist() == ref.ids.tolist()
    assert 0 < len(cache) < 700
