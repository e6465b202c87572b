"""The id tables of the ingest path (IdMap) and the structures built on them behave as the dicts
and sets they replaced: lookups, repeats in one write, deletions, generations, sweeps. Every test
runs twice: with the probing loops in C (`_idmap.c`) and with the numpy fallback."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.metrics import id_map
from heron.metrics import remote_write as rw
from heron.metrics.head_index import HeadIndex
from heron.metrics.id_map import MISSING, IdMap
from heron.metrics.limits import LimitsConfig, SeriesLimiter
from heron.metrics.model import series_id
from heron.metrics.writer import SeriesIndex, labels_map
from tests.metrics.test_limits import request

BUILT = id_map._C  # the C loops, or None under HERON_NO_NATIVE=1


@pytest.fixture(autouse=True, params=["c", "numpy"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "c":
        if id_map._C is None:
            pytest.skip("HERON_NO_NATIVE=1 (test_native.py checks the build)")
    else:
        monkeypatch.setattr(id_map, "_C", None)
    return str(request.param)


# Small id pools make repeats and shared home slots common; 0 is the empty-slot marker, kept aside.
IDS = st.one_of(st.integers(0, 40), st.integers(0, 2**64 - 1), st.integers(1, 64).map(lambda k: k << 52))
OPS = st.lists(st.tuples(st.sampled_from(["set", "get", "retain"]), st.lists(IDS, max_size=300)),
               max_size=12)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_id_map_equals_a_dict(ops: list[tuple[str, list[int]]]) -> None:
    m, ref = IdMap(), {}
    for step, (op, ids) in enumerate(ops):
        arr = np.array(ids, np.uint64)
        if op == "set":
            vals = {i: (i * 7 + step) % 1000 for i in ids}  # a repeated id: the same value
            m.set(arr, np.array([vals[i] for i in ids], np.int64))
            ref.update(vals)
        elif op == "retain":
            keys, vals_arr = m.items()
            keep = vals_arr % 2 == 0
            m.retain(keys[keep], vals_arr[keep])
            ref = {k: v for k, v in ref.items() if v % 2 == 0}
        probe = np.concatenate([arr, np.array(list(ref), np.uint64)])
        assert m.get(probe).tolist() == [ref.get(i, MISSING) for i in probe.tolist()]
        assert len(m) == len(ref)
    keys, vals_arr = m.items()
    assert dict(zip(keys.tolist(), vals_arr.tolist(), strict=True)) == ref


def test_id_map_grows_and_survives_ids_sharing_a_home_slot() -> None:
    m = IdMap()
    rng = np.random.default_rng(3)
    spread = rng.integers(1, 2**64, 50_000, dtype=np.uint64)
    crowd = np.arange(1, 5_001, dtype=np.uint64) << np.uint64(48)  # equal low bits
    for part in np.array_split(np.concatenate([spread, crowd]), 40):
        m.set(part, (part % np.uint64(1000)).astype(np.int64))
    everything = np.concatenate([spread, crowd])
    assert len(m) == len(np.unique(everything))
    assert (m.get(everything) == (everything % np.uint64(1000)).astype(np.int64)).all()
    assert (m.get(rng.integers(1, 2**64, 1000, dtype=np.uint64)) == MISSING).all()
    assert m.nbytes <= 64 * len(m) + 4096  # at most 4 slots of 16 bytes per id after growing


def _same_home(m: IdMap, slot: int, n: int) -> np.ndarray:
    """n distinct ids whose home slot in `m` is `slot` (the multiplier is odd: invertible)."""
    inv = pow(int(m._mult), -1, 1 << 64)
    return np.array([(((slot << (64 - m._bits)) + k) * inv) % (1 << 64) for k in range(1, n + 1)], np.uint64)


def test_a_chain_past_the_padding_grows_the_table_and_loses_nothing() -> None:
    m = IdMap()
    last = (1 << m._bits) - 1
    crowd = _same_home(m, last - 3, 3 * id_map._PAD)  # one chain, longer than the padding
    assert (m._slot(crowd) == last - 3).all()
    m.set(crowd[:10], np.arange(10))
    m.set(crowd, np.arange(len(crowd)) * 2)
    assert len(m) == len(crowd)
    assert m.get(crowd).tolist() == (np.arange(len(crowd)) * 2).tolist()
    assert m._bits > id_map._MIN_BITS


def test_c_and_numpy_read_each_others_tables(monkeypatch: pytest.MonkeyPatch, impl: str) -> None:
    """One layout: a table the one wrote, the other reads and extends (this run's impl writes)."""
    if BUILT is None:
        pytest.skip("HERON_NO_NATIVE=1 (test_native.py checks the build)")
    other = None if impl == "c" else BUILT
    ids = np.random.default_rng(5).integers(1, 2**64, 3000, dtype=np.uint64)
    m = IdMap()
    m.set(ids[:2000], np.arange(2000))
    with monkeypatch.context() as mp:
        mp.setattr(id_map, "_C", other)
        assert m.get(ids[:2000]).tolist() == list(range(2000))
        m.set(ids[2000:], np.arange(2000, 3000))
    assert m.get(ids).tolist() == list(range(3000))
    assert (m.get(ids + np.uint64(1)) == MISSING).sum() >= 2990


def test_series_index_claims_first_occurrences_and_ages_generations() -> None:
    idx = SeriesIndex(refresh=100.0)
    ids = np.array([5, 9, 5, 0, 7, 9], np.uint64)
    assert idx.claim_positions(ids).tolist() == [0, 1, 3, 4]  # first occurrence of each new id
    assert idx.claim_positions(ids).tolist() == []  # written: not again within the period
    assert idx.claim_new(np.array([7, 11, 11], np.uint64)) == [11]
    idx.forget([11])
    assert idx.claim_new([11]) == [11]  # a refused write's ids are claimed again
    assert len(idx) == 5
    idx._since -= 60  # half a period later: the previous generation still counts
    assert idx.claim_new([5, 12]) == [12]
    assert len(idx) == 6
    idx._since -= 60  # another half: rows written two generations ago are due again
    assert idx.claim_new([5, 9, 12]) == [5, 9]
    assert len(idx) == 3  # 0, 7 and 11 were neither refreshed nor written since: forgotten
    idx._since -= 200  # a whole period of silence: everything is due
    assert idx.claim_new([5, 12]) == [5, 12]


def test_head_index_positions_with_repeats_and_id_zero() -> None:
    index = HeadIndex()
    sets = [(("__name__", f"m{i}"),) for i in range(5)]
    ids = [series_id(s) for s in sets]
    ids[2] = 0
    got = index.positions([sets[1], sets[2], sets[1], sets[0]], np.array([ids[1], ids[2], ids[1], ids[0]], np.uint64))
    assert got.tolist() == [0, 1, 0, 2]
    assert index.labels == [sets[1], sets[2], sets[0]]
    got = index.positions(sets, np.array(ids, np.uint64))
    assert got.tolist() == [2, 0, 1, 3, 4]
    assert index.labels[3:] == [sets[3], sets[4]]


def test_sweep_forgets_idle_series_and_gives_their_room_back() -> None:
    config = LimitsConfig(max_series=7, max_series_per_metric=4, active_window=3600.0)
    limiter = SeriesLimiter(config)
    sets = [(("__name__", "a" if i < 5 else "b"), ("i", str(i))) for i in range(8)]
    ids = np.array([series_id(s) for s in sets], np.uint64)
    keep, message = limiter.admit(sets[:6], ids[:6])
    assert keep is not None and keep.tolist() == [True] * 4 + [False, True]
    assert "per-metric series limit 4 reached for a" in message
    assert len(limiter) == 5
    now = time.monotonic()
    limiter.admit([sets[0], sets[5]], ids[[0, 5]])  # still active; 1-3 go idle
    limiter._seen_at[:limiter._n][np.isin(limiter._ids[:limiter._n], ids[1:4])] = now - 4000
    assert limiter.sweep(now) == 3
    assert len(limiter) == 2 and dict(limiter._per_metric) == {"a": 1, "b": 1}
    again = [1, 2, 3, 5, 6, 7]
    keep, message = limiter.admit([sets[i] for i in again], ids[again])  # forgotten ones: new again
    assert keep is None and message == ""
    assert len(limiter) == 7 and dict(limiter._per_metric) == {"a": 4, "b": 3}
    keep, message = limiter.admit([sets[4]], ids[4:5])
    assert keep is not None and not keep.any() and "active series limit 7 reached" in message
    assert limiter.admit([sets[1]], ids[1:2]) == (None, "")  # known again: no limit applies


def test_series_rows_of_every_set_in_order_equal_the_taken_rows() -> None:
    """A sender's first write: the rows are built from the decoder's arrays without a take,
    and equal those built with one (and from label tuples)."""
    series = [tuple(sorted({"__name__": f"m{i % 3}", "i": str(i), "u": "é" * (i % 4)}.items()))
              for i in range(40)]
    series = [tuple(kv for kv in s if kv[1]) for s in series]
    decoded = rw._decode_fast(request(series), rw.LabelsCache())
    assert decoded.flat is not None and decoded.ids is not None
    every = np.arange(40)
    assert decoded.flat.all_sets(every) and not decoded.flat.all_sets(every[::-1])
    direct = decoded.flat.table(every, decoded.ids)
    taken = decoded.flat.table(every[::-1], decoded.ids[::-1])
    assert direct.to_pylist() == taken.to_pylist()[::-1]
    assert direct.column("labels").to_pylist() == labels_map(series).to_pylist()
    assert direct.schema == taken.schema


def test_c_loops_refuse_bad_arguments_with_an_error() -> None:
    """The C entry points check what they are given (a Python error, never a crash)."""
    if BUILT is None:
        pytest.skip("HERON_NO_NATIVE=1 (test_native.py checks the build)")
    keys, ids, out = np.zeros(1024 + id_map._PAD, np.uint64), np.ones(2, np.uint64), np.empty(2, np.int64)
    with pytest.raises(ValueError, match="bits out of range"):
        BUILT.find(keys, 3, 70, ids, out)
    with pytest.raises(ValueError, match="sizes do not match"):
        BUILT.find(keys[:100], 3, 10, ids, out)  # fewer slots than 2^bits
    with pytest.raises(ValueError, match="sizes do not match"):
        BUILT.find(keys, 3, 10, ids, np.empty(3, np.int64))
    with pytest.raises(ValueError, match="multiple of 8"):
        BUILT.find(keys, 3, 10, ids, out.view(np.uint8)[:15])
    read_only = np.empty(2, np.int64)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        BUILT.find(keys, 3, 10, ids, read_only)
    with pytest.raises(ValueError, match="sizes do not match"):
        BUILT.insert(keys, np.zeros(10, np.int64), 3, 10, ids, np.zeros(2, np.int64))
    assert not keys.any()  # nothing written by a refused call
