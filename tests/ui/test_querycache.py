"""The query_range results cache in front of the Prometheus API (heron.ui.querycache)."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np

from heron.metrics.model import labels_from
from heron.server import Heron
from heron.ui.querycache import QueryCache


def test_key_only_for_numeric_ranges_that_ended() -> None:
    c = QueryCache(ttl=60, recent_ttl=10)
    now = 10_000.0
    old = c.key("/api/v1/query_range", b"query=up&start=1000&end=2000&step=60", now)
    assert old is not None and old[1] == 60
    recent = c.key("/api/v1/query_range", b"query=up&start=9000&end=9900&step=60", now)
    assert recent is not None and recent[1] == 10  # may still get late samples: short TTL
    assert c.key("/api/v1/query_range", b"query=up&start=9000&end=10060&step=60", now) is None  # ends in the future
    assert c.key("/api/v1/query_range", b"query=up&start=2020-01-01T00:00:00Z&end=2000&step=60", now) is None
    assert c.key("/api/v1/query_range", b"query=up&start=1&end=2&step=1m", now) is None  # only numeric
    assert c.key("/api/v1/query_range", b"query=up&query=down&start=1&end=2&step=1", now) is None  # repeated
    assert c.key("/api/v1/query", b"query=up&time=5000", now) is not None
    assert c.key("/api/v1/query", b"query=up", now) is None  # "now": never cached
    # parameter order does not matter; the path does
    a = c.key("/api/v1/query_range", b"step=60&end=2000&start=1000&query=up", now)
    assert a is not None and a[0] == old[0]
    assert QueryCache(ttl=0).key("/api/v1/query_range", b"query=up&start=1&end=2&step=1", now) is None


def test_lru_bounded_by_bytes() -> None:
    from heron.ui.querycache import Entry

    c = QueryCache(max_bytes=250)
    for i in range(5):
        c.put(((str(i), ""),), Entry(200, [], b"x" * 100, time.time() + 60))
    assert [k[0][0] for k in c.entries] == ["3", "4"] and c.size == 200
    assert c.get((("4", ""),), time.time() + 120) is None  # expired entries are dropped
    assert c.size == 100


async def _write(heron: Heron, now: int) -> None:
    ts = np.arange((now - 3600) * 1000, int(time.time() * 1000) - 1000, 15_000, dtype=np.int64)
    series = [labels_from({"__name__": "ui_cache_probe", "job": j}) for j in ("a", "b")]
    await heron.metrics_writer.write(series, np.array([len(ts), len(ts) // 2]),
                                     np.concatenate([ts, ts[len(ts) - len(ts) // 2:]]),
                                     np.arange(len(ts) + len(ts) // 2, dtype=np.float64))
    heron.pipeline.flush()


async def test_served_from_cache_until_ttl_and_only_when_authorized(heron: Heron, client: httpx.AsyncClient) -> None:
    now = int(time.time()) // 60 * 60
    await _write(heron, now)
    params = {"query": "sum(ui_cache_probe)", "start": str(now - 3600), "end": str(now - 900), "step": "60"}
    r1 = await client.get("/api/v1/query_range", params=params)
    assert r1.status_code == 200 and r1.headers["x-heron-cache"] == "miss"
    values = r1.json()["data"]["result"][0]["values"]
    r2 = await client.get("/api/v1/query_range", params=params)
    assert r2.headers["x-heron-cache"] == "hit" and r2.json() == r1.json()
    # concurrent identical requests for a new key share one evaluation
    p2 = {**params, "step": "120"}
    got = await asyncio.gather(*(client.get("/api/v1/query_range", params=p2) for _ in range(4)))
    assert sorted(g.headers["x-heron-cache"] for g in got) == ["hit", "hit", "hit", "miss"]
    assert len({g.text for g in got}) == 1
    # no credentials: no cached body, the handler's 401
    anon = await client.get("/api/v1/query_range", params=params, headers={"Authorization": ""})
    assert anon.status_code == 401 and "ui_cache_probe" not in anon.text
    # POST is never cached (the bench measures the engine that way); errors are not kept
    assert (await client.post("/api/v1/query_range", data=params)).headers.get("x-heron-cache") is None
    bad = {**params, "query": "sum(ui_cache_probe"}
    assert (await client.get("/api/v1/query_range", params=bad)).status_code == 400
    assert (await client.get("/api/v1/query_range", params=bad)).headers["x-heron-cache"] == "miss"
    # a range ending now is evaluated every time
    live = {**params, "end": str(time.time() + 30)}
    assert (await client.get("/api/v1/query_range", params=live)).headers["x-heron-cache"] == "bypass"
    assert len(values) > 10


async def test_moved_range_reuses_settled_steps(heron: Heron, client: httpx.AsyncClient) -> None:
    """A refresh of "Last 1h" moved by a step: the reply is the stored steps plus the new ones,
    equal to a full (uncached, POST) evaluation."""
    now = int(time.time()) // 60 * 60
    await _write(heron, now)
    e0 = now - 120
    for expr in ("sum by (job) (rate(ui_cache_probe[2m]))", "ui_cache_probe * 2"):
        first = {"query": expr, "start": str(e0 - 3600), "end": str(e0), "step": "60"}
        r1 = await client.get("/api/v1/query_range", params=first)
        assert r1.headers["x-heron-cache"] == "miss", r1.text
        moved = {**first, "start": str(e0 - 3600 + 60), "end": str(e0 + 60)}
        r2 = await client.get("/api/v1/query_range", params=moved)
        assert r2.status_code == 200 and r2.headers["x-heron-cache"] == "partial"
        full = (await client.post("/api/v1/query_range", data=moved)).json()
        assert r2.json() == full
        assert len(full["data"]["result"]) == 2 and len(full["data"]["result"][0]["values"]) > 50
    # `@` depends on the range: never stitched
    at = {"query": "ui_cache_probe @ end()", "start": str(e0 - 3600), "end": str(e0), "step": "60"}
    await client.get("/api/v1/query_range", params=at)
    moved_at = {**at, "start": str(e0 - 3540), "end": str(e0 + 60)}
    assert (await client.get("/api/v1/query_range", params=moved_at)).headers["x-heron-cache"] == "miss"
    # a different step phase is not stitched either
    odd = {"query": "ui_cache_probe * 2", "start": str(e0 - 3600 + 90), "end": str(e0 + 30), "step": "60"}
    assert (await client.get("/api/v1/query_range", params=odd)).headers["x-heron-cache"] == "miss"


def test_reused_steps_are_at_most_ten_minutes_old() -> None:
    from heron.ui.extents import MAX_AGE, Extent, Extents

    x = Extents(1 << 20)
    key = (("query", "up"), ("step", "60"))
    now = 100_000.0
    x.store(key, Extent(now - 7200, now - 600, 60, b"{}", now + 60, born=now - 30))
    found = x.lookup(key, now - 7200 + 60, now - 540, 60, now)
    assert found is not None and found[1] == now - 600  # reuse up to its end (older than 5 min)
    x.store(key, Extent(now - 7200, now - 600, 60, b"{}", now + 60, born=now - MAX_AGE - 1))
    assert x.lookup(key, now - 7200 + 60, now - 540, 60, now) is None  # carried forward too long


def test_is_matrix_agrees_with_parsing_on_encoded_replies() -> None:
    from heron.promql.encode import query_body
    from heron.promql.result import Result, Sample, Series
    from heron.ui import extents

    times = np.array([1_000, 2_000], np.int64)
    one = Series({"job": "a", "warnings": "x"}, times_ms=times, values=np.array([1.0, 2.0]))
    two = Series({"a": "b"}, times_ms=times, values=np.array([1.0, np.nan]))
    cases = [
        Result("matrix", matrix=[two]),
        Result("matrix", matrix=[]),
        Result("matrix", matrix=[two], warnings=["PromQL warning: x"]),
        Result("matrix", matrix=[one]),  # a label named "warnings": not stored (conservative)
        Result("vector", vector=[Sample({"a": "b"}, 1.0, 2.0)]),
        Result("scalar", scalar=(1.0, 2.0)),
    ]
    got = []
    for res in cases:
        body = query_body(res, None, res.grid_ms if res.type == "matrix" else None)
        got.append((extents.is_matrix(body), extents.parse_matrix(body) is not None))
    assert got == [(True, True), (True, True), (False, False), (False, True), (False, False), (False, False)]
