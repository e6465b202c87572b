"""The engine's step cache (heron.promql.stepcache) gives a full evaluation's results bit for bit.

Two engines read one head: one with the cache, one without (`step_cache_mb=0`). The cached
one is asked overlapping, moved, re-stepped and concurrent ranges, then writes land in the
middle of ranges it already holds. Every reply must match the uncached engine exactly: series,
order, timestamps and the bits of every value. The data has float counter resets (sums that
depend on the order of additions), stale markers, gaps and series that start and stop.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from heron.metrics.head import EVERYTHING, Head
from heron.metrics.model import STALE_NAN, labels_from
from heron.promql import Engine, Result
from tests.metrics.test_head import _EmptyStorage

MIN = 60_000
HOUR = 60 * MIN
NOW = int(time.time()) * 1000 // MIN * MIN
T0 = NOW - 3 * HOUR

QUERIES = [
    "rate(http_requests_total[75s])",
    "sum by (job) (rate(http_requests_total[75s]))",
    'sum by (job) (rate(http_requests_total{code=~"5.."}[2m])) / sum by (job) (rate(http_requests_total[2m]))',
    "topk(3, sum by (instance) (increase(http_requests_total[5m])))",
    "histogram_quantile(0.9, sum by (le) (rate(latency_bucket[5m])))",
    "delta(queue_depth[3m])",
    "irate(http_requests_total[1m] offset 5m)",
    "idelta(queue_depth[90s])",
]


def _data(seed: int = 7) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(36):
        job, inst, code = f"job{i % 3}", f"10.0.0.{i % 6}:80", ("200", "500", "503")[i % 3]
        start = T0 + (i % 5) * 7_000 + (40 * MIN if i % 7 == 3 else 0)  # some start late
        stop = NOW - (50 * MIN if i % 8 == 5 else 0)  # some stop early
        ts = np.arange(start, stop, 15_000 + (i % 4) * 5_000, dtype=np.int64)
        ts = np.delete(ts, np.arange(30, min(len(ts), 45)) if i % 6 == 2 else [])  # a gap
        vals = np.cumsum(rng.random(len(ts)) * 10.3)
        for cut in rng.integers(5, len(ts) - 5, 4):  # float resets: order of additions matters
            vals[cut:] -= vals[cut - 1] * rng.random()
            vals[cut:] = np.abs(vals[cut:])
        if i % 5 == 1:
            vals[len(vals) // 2] = STALE_NAN
        name = "http_requests_total" if i < 24 else "queue_depth"
        lb = {"__name__": name, "job": job, "instance": inst, "code": code}
        out.append((labels_from(lb), ts, vals))
    bucket_ts = np.arange(T0, NOW, 15_000, dtype=np.int64)
    counts = np.cumsum(rng.poisson(4, (len(bucket_ts), 4)), axis=0).cumsum(axis=1).astype(np.float64)
    for b, le in enumerate(["0.1", "0.5", "1", "+Inf"]):
        out.append((labels_from({"__name__": "latency_bucket", "job": "job0", "le": le}), bucket_ts,
                    counts[:, b] * 0.37))
    return out


def _feed(head: Head, data: list[tuple[Any, np.ndarray, np.ndarray]]) -> None:
    head.append([lb for lb, _, _ in data], [len(ts) for _, ts, _ in data],
                np.concatenate([ts for _, ts, _ in data]), np.concatenate([v for _, _, v in data]))


@pytest.fixture
def head() -> Any:
    h = Head(6 * HOUR, compact_every=3600)
    h.load(_EmptyStorage())  # type: ignore[arg-type]
    _feed(h, _data())
    yield h
    h.close()


def _same(a: Result, b: Result, what: str) -> None:
    assert [s.labels for s in a.matrix] == [s.labels for s in b.matrix], what
    for x, y in zip(a.matrix, b.matrix, strict=True):
        assert np.array_equal(x.times_ms, y.times_ms), (what, x.labels)
        xv, yv = np.asarray(x.values, np.float64), np.asarray(y.values, np.float64)
        assert np.array_equal(xv.view(np.int64), yv.view(np.int64)), (what, x.labels, xv - yv)


def _ranges() -> list[tuple[float, float, float]]:
    """Overlapping, moved (by whole steps and not), re-stepped ranges, in seconds."""
    end = (NOW - 5 * MIN) / 1000
    out = []
    for step in (60.0, 120.0, 15.0, 60.0):
        for shift in (0, 120, 240, 37, 3600, 0):
            out.append((end - 2 * 3600 - shift, end - shift, step))
    return out


@pytest.mark.parametrize("mb", [128, 0.05])  # 0.05 MiB: entries lose chunks, the cache entries
def test_cached_ranges_are_bit_identical(head: Head, mb: float) -> None:
    cached = Engine(_EmptyStorage(), head=head, step_cache_mb=mb)  # type: ignore[arg-type]
    plain = Engine(_EmptyStorage(), head=head, step_cache_mb=0)  # type: ignore[arg-type]
    assert cached.step_cache is not None and plain.step_cache is None
    most = 0
    for q in QUERIES:
        for s, e, st in _ranges():
            _same(cached.range(q, s, e, st), plain.range(q, s, e, st), f"{q} {s} {e} {st}")
            most = max([most, *(len(x.chunks) for x in cached.step_cache._entries.values())])
            assert cached.step_cache.size <= cached.step_cache.max_bytes or len(cached.step_cache._entries) == 1
    cache = cached.step_cache
    if mb > 1:
        assert cache.hits > cache.misses > 0  # the moved ranges were mostly read from the cache
        assert most == cache.MAX_CHUNKS  # an entry reached the cap: its next evaluation merged them


def test_concurrent_queries_share_one_evaluation(head: Head) -> None:
    cached, plain = Engine(_EmptyStorage(), head=head), Engine(_EmptyStorage(), head=head, step_cache_mb=0)  # type: ignore[arg-type]
    s, e = (NOW - 3 * HOUR) / 1000, (NOW - 10 * MIN) / 1000
    qs = QUERIES[:3] * 4
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda q: cached.range(q, s, e, 60), qs))
    for q, r in zip(qs, got, strict=True):
        _same(r, plain.range(q, s, e, 60), q)
    steps = len(np.arange(s, e + 1, 60))
    # rate(http_requests_total[75s]), [2m] and {code=~"5.."}[2m]: each window end evaluated once
    assert cached.step_cache is not None and cached.step_cache.misses == 3 * steps


def test_writes_into_cached_windows_are_seen(head: Head) -> None:
    cached, plain = Engine(_EmptyStorage(), head=head), Engine(_EmptyStorage(), head=head, step_cache_mb=0)  # type: ignore[arg-type]
    s, e = (NOW - 3 * HOUR) / 1000, (NOW - 5 * MIN) / 1000
    for q in QUERIES:
        cached.range(q, s, e, 60)
    assert cached.step_cache is not None
    before = cached.step_cache.misses
    # a late sample in the middle of the range (an out-of-order write) and a new series there
    mid = NOW - 90 * MIN + 3_000
    lb = labels_from({"__name__": "http_requests_total", "job": "job1", "instance": "10.0.0.1:80", "code": "500"})
    new = labels_from({"__name__": "http_requests_total", "job": "job9", "instance": "x", "code": "503"})
    head.append([lb, new], [1, 3], np.array([mid, mid - 20_000, mid, mid + 20_000]),
                np.array([1e6, 1.0, 2.5, 0.5]))
    for q in QUERIES:
        _same(cached.range(q, s, e, 60), plain.range(q, s, e, 60), q)
    # only the window ends at or after the write were evaluated again
    again = cached.step_cache.misses - before
    assert 0 < again < len(QUERIES) * len(np.arange(s, e + 1, 60)) // 2


def test_written_since() -> None:
    h = Head(HOUR)
    h.load(_EmptyStorage())  # type: ignore[arg-type]
    lb = labels_from({"__name__": "x"})
    n = h.writes
    assert h.written_since(n) is None
    h.append([lb], [2], np.array([NOW - 5_000, NOW - 1_000]), np.array([1.0, 2.0]))
    h.append([lb], [1], np.array([NOW - 30_000]), np.array([3.0]))
    assert h.written_since(n) == NOW - 30_000
    assert h.written_since(n + 1) == NOW - 30_000
    assert h.written_since(h.writes) is None
    assert h.written_since(-5) == EVERYTHING  # older than the log: everything may have changed
    h.close()


def test_instant_queries_and_storage_ranges_bypass_the_cache(head: Head) -> None:
    cached = Engine(_EmptyStorage(), head=head)  # type: ignore[arg-type]
    assert cached.step_cache is not None
    cached.instant("rate(http_requests_total[5m])", (NOW - 10 * MIN) / 1000)
    # before the head's coverage (raised here by hand): storage answers, nothing is cached
    cached.range("rate(http_requests_total[5m])", (NOW - 2 * HOUR) / 1000, (NOW - HOUR) / 1000, 60)
    assert cached.step_cache.misses > 0
    misses = cached.step_cache.misses
    with head._write_lock:
        head._raise_cover(NOW)
    cached.range("rate(http_requests_total[5m])", (NOW - 2 * HOUR) / 1000, (NOW - HOUR) / 1000, 60)
    assert cached.step_cache.misses == misses and cached.step_cache.hits == 0
