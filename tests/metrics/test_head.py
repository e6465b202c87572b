"""The in-memory head answers exactly what storage answers, for the ranges it covers.

Every comparison runs the same selection or PromQL query twice on the same chDB database: once
through the head and once through SQL only (`fetch.select_storage`, `Engine(storage)`).
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from heron.metrics.head import Head
from heron.metrics.head_index import python_regex
from heron.metrics.model import STALE_NAN, Labels, labels_from
from heron.metrics.remote_write_client import REMOTE_WRITE_HEADERS, encode_write_request
from heron.promql import Engine, catalog
from heron.promql.fetch import Matcher, Selection, select, select_storage
from heron.promql.testdata import write_series
from heron.server import Heron
from heron.storage.chdb import ChDBStorage
from heron.storage.schema import migrate
from heron.testing import HeronProcess

HOUR = 3_600_000
NOW = int(time.time()) * 1000 // 60_000 * 60_000
BASE = NOW - 2 * HOUR

Data = list[tuple[Labels, np.ndarray, np.ndarray]]


def make_series(n: int = 120) -> list[Labels]:
    out = []
    for i in range(n):
        lb = {"__name__": ("http_requests_total", "up", "queue_depth")[i % 3], "job": f"job{i % 4}",
              "instance": f"10.0.0.{i}:80", "code": ("200", "500", "404")[i % 3]}
        if i % 5 == 0:
            lb["zone"] = ("eu-west", "Zürich", "line\nbreak", "us")[i // 5 % 4]
        if i % 9 == 0:
            del lb["code"]
        out.append(labels_from(lb))
    return out


def make_data(series: list[Labels], t0: int, t1: int, seed: int = 3) -> Data:
    rng = np.random.default_rng(seed)
    data = []
    for i, lb in enumerate(series):
        ts = np.arange(t0 + (i % 7) * 1000, t1, 15_000, dtype=np.int64)
        vals = np.cumsum(rng.poisson(5, len(ts))).astype(np.float64)
        if i % 11 == 0 and len(vals) > 40:
            vals[len(vals) // 2] = STALE_NAN  # a stale marker in the middle
            vals[len(vals) // 3] = 0.0  # a counter reset
        data.append((lb, ts, vals))
    return data


def feed(head: Head, data: Data) -> None:
    head.append([lb for lb, _, _ in data], [len(ts) for _, ts, _ in data],
                np.concatenate([ts for _, ts, _ in data]), np.concatenate([v for _, _, v in data]))


def same(a: Selection, b: Selection) -> str:
    if a.labels != b.labels:
        return f"labels differ: {len(a.labels)} vs {len(b.labels)}"
    if not np.array_equal(a.starts, b.starts) or not np.array_equal(a.ts, b.ts):
        return "timestamps differ"
    if not np.array_equal(a.values.view(np.uint64), b.values.view(np.uint64)):
        return "values differ"
    return ""


def drop_empty(sel: Selection) -> Selection:
    """Storage returns matched series even without samples in range; the head leaves them out."""
    keep = np.diff(sel.starts) > 0
    starts = np.concatenate([[0], np.cumsum(np.diff(sel.starts)[keep])]).astype(np.int64)
    return Selection([lb for lb, k in zip(sel.labels, keep, strict=True) if k], sel.ts, sel.values,
                     starts, sel.mint, sel.maxt)


MATCHERS: list[list[list[Matcher]]] = [
    [[Matcher("__name__", "=", "http_requests_total")]],
    [[Matcher("__name__", "=", "up"), Matcher("job", "!=", "job1")]],
    [[Matcher("job", "=~", "job[12]"), Matcher("instance", "!~", "10.0.0.1.*")]],
    [[Matcher("code", "=", "")]],  # series without the label
    [[Matcher("code", "!=", "")]],
    [[Matcher("zone", "=~", "")]],
    [[Matcher("zone", "=~", ".*")]],
    [[Matcher("zone", "=~", ".+")]],
    [[Matcher("zone", "!~", "eu.*|")]],
    [[Matcher("zone", "=~", "line.break")]],  # `.` matches a newline (Prometheus 3)
    [[Matcher("zone", "=~", "line$")]],  # anchored: no match before the newline
    [[Matcher("zone", "=~", r"\pL+")]],  # RE2 only: judged by ClickHouse
    [[Matcher("zone", "=~", "[[:alpha:]]+")]],
    [[Matcher("zone", "=~", "(?i)ZÜRICH")]],
    [[Matcher("zone", "=~", "us|(?i)EU-WEST")]],
    [[Matcher("__name__", "=~", "up|queue_.*")], [Matcher("code", "=", "404")]],  # `or` groups
    [[Matcher("__name__", "=", "nope")]],
    [[Matcher("nope", "!=", "x"), Matcher("job", "=", "job3")]],
]


@pytest.fixture
def db(storage: ChDBStorage) -> ChDBStorage:
    migrate(storage)
    return storage


def test_head_selections_equal_storage(db: ChDBStorage) -> None:
    """Loaded history plus live writes (out of order, duplicates, stale markers, new series)."""
    series = make_series()
    history = make_data(series[:90], BASE, NOW - HOUR)
    write_series(db, history)
    head = Head(3 * HOUR, storage=db, tail_limit=5_000)
    assert head.coverage_start is None and head.select(MATCHERS[0], BASE, NOW) is None
    assert head.load(db, chunk_rows=1_000) == sum(len(ts) for _, ts, _ in history)  # read in slices
    assert head.coverage_start is not None and head.coverage_start < BASE  # storage held nothing older
    live = make_data(series, NOW - HOUR, NOW + 60_000, seed=5)
    chunks = [(lb, ts[i::3], v[i::3]) for i in (2, 0, 1) for lb, ts, v in live]  # out of order
    chunks += [(lb, ts[-5:], v[-5:]) for lb, ts, v in live[:10]]  # duplicates, same values
    for k in range(0, len(chunks), 40):
        feed(head, chunks[k:k + 40])
        write_series(db, chunks[k:k + 40])
        if k == 80:
            head.compact()  # part in the block, part in the tail
    assert head.stats()["tail"] > 0
    ranges = [(BASE, NOW + 60_000), (NOW - 30 * 60_000, NOW - 10 * 60_000), (NOW - HOUR, NOW - HOUR),
              (NOW + 120_000, NOW + 300_000)]
    for groups in MATCHERS:
        for lo, hi in ranges:
            got = select(db, groups, lo, hi, head=head)
            want = drop_empty(select_storage(db, groups, lo, hi))
            assert not same(got, want), (groups, lo, hi, same(got, want))
    head.compact()
    assert head.stats()["tail"] == 0
    for groups in MATCHERS:
        got, want = select(db, groups, BASE, NOW + 60_000, head=head), select_storage(db, groups, BASE, NOW + 60_000)
        assert not same(got, drop_empty(want)), groups
    head.close()


def test_catalog_from_head_equals_sql(db: ChDBStorage) -> None:
    """/api/v1/series, labels and label values over a covered range need no SQL."""
    series = make_series(50)
    data = make_data(series[:40], BASE, NOW - HOUR) + make_data(series[40:], NOW - 20 * 60_000, NOW)
    write_series(db, data)
    head = Head(3 * HOUR, storage=db)
    head.load(db)
    for lo, hi in [(BASE, NOW), (NOW - 30 * 60_000, NOW)]:
        for groups in MATCHERS[:8]:
            assert catalog.series(db, groups, lo, hi, head=head) == catalog.series(db, groups, lo, hi)
            assert catalog.label_names(db, groups, lo, hi, head=head) == catalog.label_names(db, groups, lo, hi)
            for name in ("__name__", "zone", "code"):
                assert (catalog.label_values(db, name, groups, lo, hi, head=head)
                        == catalog.label_values(db, name, groups, lo, hi)), (groups, name)
        assert catalog.label_names(db, None, lo, hi, head=head) == catalog.label_names(db, None, lo, hi)
    assert len(catalog.series(db, MATCHERS[0], NOW - 30 * 60_000, NOW, head=head)) < len(
        catalog.series(db, MATCHERS[0], BASE, NOW, head=head))
    head.close()


QUERIES = [
    "http_requests_total",
    "sum by (job) (rate(http_requests_total[5m]))",
    "increase(http_requests_total[10m])",
    "irate(queue_depth[2m])",
    'max_over_time(up{zone=~".+"}[7m])',
    'count by (zone) (up{zone!~"eu.*"})',
    'queue_depth{code=""} offset 10m',
    "max_over_time(rate(http_requests_total[5m])[20m:1m])",
    "topk(3, queue_depth)",
    'absent(up{job="none"})',
    "http_requests_total @ end()",
]


def test_promql_on_head_equals_storage(db: ChDBStorage) -> None:
    series = make_series(60)
    data = make_data(series, BASE, NOW)
    write_series(db, data[:30])
    head = Head(3 * HOUR, storage=db)
    head.load(db)
    feed(head, data[30:])
    write_series(db, data[30:])
    # The head path skips the ClickHouse push-down of rate & co. (pushdown.py): compare numpy with numpy.
    with_head, plain = Engine(db, head=head), Engine(db, pushdown=False)
    for q in QUERIES:
        for got, want in [
            (with_head.range(q, (NOW - HOUR) / 1000, NOW / 1000, 30), plain.range(q, (NOW - HOUR) / 1000, NOW / 1000, 30)),
            (with_head.instant(q, (NOW - 60_000) / 1000), plain.instant(q, (NOW - 60_000) / 1000)),
        ]:
            assert got.to_prometheus() == want.to_prometheus(), q
    head.close()


def test_duplicates_last_write_wins() -> None:
    head = Head(HOUR)
    head.load(_EmptyStorage())
    lb = labels_from({"__name__": "x"})
    t = NOW - 60_000
    for v in (1.0, 2.0):
        head.append([lb], [2], np.array([t, t + 1000]), np.array([v, v]))
    got = head.select([[("__name__", "=", "x")]], 0, NOW)
    assert got is not None and got[2].tolist() == [2.0, 2.0]
    head.compact()
    head.append([lb], [1], np.array([t]), np.array([3.0]))  # the block holds t: the tail wins
    got = head.select([[("__name__", "=", "x")]], 0, NOW)
    assert got is not None and got[2].tolist() == [3.0, 2.0]
    head.compact()
    got = head.select([[("__name__", "=", "x")]], 0, NOW)
    assert got is not None and got[1].tolist() == [t, t + 1000] and got[2].tolist() == [3.0, 2.0]


class _EmptyStorage:
    """A storage with no samples (no chDB needed for pure head tests)."""

    database = "none"

    def command(self, sql: str, params: Any = None) -> None: ...

    def insert(self, table: str, data: Any, dedup_token: str | None = None) -> None: ...

    def close(self) -> None: ...

    def execute(self, sql: str, params: Any = None, settings: Any = None) -> Any:
        import pyarrow as pa

        if "count()" in sql:
            return pa.table({"n": [0], "lo": [0]})
        return pa.table({"series_id": pa.array([], pa.uint64()), "ts": pa.array([], pa.int64()),
                         "value": pa.array([], pa.float64()),
                         "lbls": pa.array([], pa.map_(pa.string(), pa.string()))})


def test_eviction_and_straddling_ranges(db: ChDBStorage) -> None:
    """A 1h head over 2h of data: older ranges read storage, straddling ones both."""
    series = make_series(40)
    data = make_data(series, BASE, NOW)
    write_series(db, data)
    head = Head(HOUR, storage=db)
    head.load(db, now_ms=NOW)
    cov = head.coverage_start
    assert cov == NOW - HOUR
    assert head.select(MATCHERS[0], NOW - 2 * HOUR, NOW) is None  # not covered
    for groups in MATCHERS[:6]:
        got = select(db, groups, BASE, NOW, head=head)  # straddles the coverage start
        assert not same(got, drop_empty(select_storage(db, groups, BASE, NOW))), groups
    q = "sum by (job) (rate(http_requests_total[5m]))"
    assert (Engine(db, head=head, pushdown=False).range(q, BASE / 1000, NOW / 1000, 60).to_prometheus()
            == Engine(db, pushdown=False).range(q, BASE / 1000, NOW / 1000, 60).to_prometheus())
    # Time passes: half an hour leaves the window.
    head.compact(now_ms=NOW + 30 * 60_000)
    assert head.coverage_start == NOW - 30 * 60_000
    assert head.stats()["samples"] < sum(int((ts >= cov).sum()) for _, ts, _ in data)
    assert head.select(MATCHERS[0], NOW - 40 * 60_000, NOW) is None
    got = select(db, MATCHERS[0], NOW - 40 * 60_000, NOW, head=head)
    assert not same(got, drop_empty(select_storage(db, MATCHERS[0], NOW - 40 * 60_000, NOW)))
    # A sample older than the coverage start arrives: it goes to storage only, coverage moves past it.
    head.append([series[0]], [1], np.array([NOW - 2 * HOUR + 5]), np.array([1.0]))
    assert head.coverage_start == NOW - 30 * 60_000
    head.close()


def test_concat_places_every_sample_like_a_sort() -> None:
    """The straddle's per-series concatenation (no sort) equals the sorting merge."""
    from heron.promql.fetch import _concat, _concat_sorted

    rng = np.random.default_rng(9)

    def sel(names: list[str], t0: int, t1: int) -> Selection:
        counts = rng.integers(0, 5, len(names))
        ts = np.concatenate([np.sort(rng.integers(t0, t1, c)) for c in counts]).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Selection([(("n", x),) for x in names], ts, rng.random(len(ts)), starts, t0, t1)

    old, new = sel(["a", "c", "d", "f"], 0, 100), sel(["b", "c", "f", "g"], 100, 200)
    labels = sorted(set(old.labels) | set(new.labels))
    want = _concat_sorted(old, new, labels, {lb: i for i, lb in enumerate(labels)}, 0, 200)
    got = _concat(old, new, 0, 200)
    assert not same(got, want) and got.labels == labels


def test_sample_cap_shrinks_the_window(db: ChDBStorage) -> None:
    series = make_series(20)
    data = make_data(series, NOW - HOUR, NOW)
    write_series(db, data)
    head = Head(3 * HOUR, max_samples=2_000, storage=db)
    loaded = head.load(db)
    assert 1_000 < loaded <= 2_000  # only the newest minutes that fit the cap are read
    assert head.stats()["samples"] == loaded
    cov = head.coverage_start
    assert cov is not None and cov > NOW - HOUR
    got = select(db, MATCHERS[0], NOW - HOUR, NOW, head=head)
    assert not same(got, drop_empty(select_storage(db, MATCHERS[0], NOW - HOUR, NOW)))
    head.close()


def test_concurrent_writer_compactor_and_readers() -> None:
    """Readers never see a torn state while one writer appends and the compactor merges."""
    import threading

    head = Head(HOUR, tail_limit=500, compact_every=0.01)
    head.load(_EmptyStorage())
    series = make_series(40)
    rounds = 60
    errors: list[str] = []
    done = threading.Event()

    def writer() -> None:
        for r in range(rounds):  # every series gets one sample per round, new series appear
            live = series[: 20 + r % 20]
            head.append(live, [1] * len(live), np.full(len(live), NOW - HOUR // 2 + r * 1000),
                        np.full(len(live), float(r)))
        done.set()

    def reader() -> None:
        seen = 0
        while not done.is_set() or seen == 0:
            got = head.select([[("__name__", "=~", ".+")]], NOW - HOUR // 2, NOW)
            if got is None:
                errors.append("not covered")
                return
            labels, ts, vals, starts = got
            total = int(starts[-1])
            if total < seen or len(ts) != total or len(vals) != total:
                errors.append(f"torn read: {total} after {seen}")
            for i in range(len(labels)):  # per series: strictly increasing times, value = round
                t = ts[starts[i]:starts[i + 1]]
                if (np.diff(t) <= 0).any() or not np.array_equal(vals[starts[i]:starts[i + 1]],
                                                                (t - (NOW - HOUR // 2)) / 1000):
                    errors.append(f"series {labels[i]} out of order or wrong values")
                    return
            seen = total

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    expected = sum(20 + r % 20 for r in range(rounds))
    deadline = time.monotonic() + 10
    while head.stats()["tail"] >= expected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert head.stats()["tail"] < expected  # the background compactor ran meanwhile
    head.compact()
    assert not errors, errors[:3]
    got = head.select([[("__name__", "=~", ".+")]], NOW - HOUR // 2, NOW)
    assert got is not None and int(got[3][-1]) == expected
    head.close()


def test_python_regex_only_where_it_agrees_with_re2() -> None:
    for pattern in [r"\pL", "[[:alpha:]]", r"a\z", "a{,3}", "(?U)a+", "é", r"\Q.\E", r"\1", "(?<n>a)"]:
        assert python_regex(pattern) is None, pattern
    rx = python_regex("(?i)foo.bar")
    assert rx is not None and rx.fullmatch("FOO\nBAR") and not rx.fullmatch("xfoo.bar")


def test_sql_only_engine_is_unchanged(db: ChDBStorage) -> None:
    """`Engine(storage)` (tests, `heron test rules`, CLI) never looks for a head."""
    engine = Engine(db)
    assert engine.head is None
    write_series(db, make_data(make_series(6), BASE, NOW))
    assert len(engine.instant("http_requests_total", NOW / 1000).vector) == 2


async def test_acknowledged_writes_are_queryable_at_once(tmp_path: Path) -> None:
    """Through the running server: no flush, yet the API sees the write; storage agrees later."""
    from tests.conftest import make_config

    heron = Heron(make_config(tmp_path, pipeline={"flush_interval": 30}))  # type: ignore[arg-type]
    await heron.start()
    try:
        assert heron.head is not None and heron.head.coverage_start is not None
        series = make_series(30)
        data = make_data(series, NOW - 20 * 60_000, NOW)
        await heron.metrics_writer.write([lb for lb, _, _ in data], [len(t) for _, t, _ in data],
                                         np.concatenate([t for _, t, _ in data]),
                                         np.concatenate([v for _, _, v in data]))
        q = "sum by (job) (rate(http_requests_total[5m]))"
        got = heron.query_engine.instant(q, NOW / 1000).to_prometheus()
        assert len(got["result"]) == 4
        await asyncio.to_thread(heron.pipeline.flush)
        assert Engine(heron.storage, pushdown=False).instant(q, NOW / 1000).to_prometheus() == got
    finally:
        await heron.stop()


async def test_head_window_zero_reads_storage(tmp_path: Path) -> None:
    from tests.conftest import make_config

    heron = Heron(make_config(tmp_path, storage={"head_window": "0"}))  # type: ignore[arg-type]
    await heron.start()
    try:
        assert heron.head is None and heron.metrics_writer.head is None and heron.query_engine.head is None
        data = make_data(make_series(9), NOW - 10 * 60_000, NOW)
        await heron.metrics_writer.write([lb for lb, _, _ in data], [len(t) for _, t, _ in data],
                                         np.concatenate([t for _, t, _ in data]),
                                         np.concatenate([v for _, _, v in data]))
        await asyncio.to_thread(heron.pipeline.flush)
        got = heron.query_engine.instant("count(http_requests_total)", NOW / 1000).to_prometheus()
        assert got["result"][0]["value"][1] == "3"
    finally:
        await heron.stop()


def _query(h: HeronProcess, q: str, t: float) -> Any:
    r = httpx.get(h.url + "/api/v1/query", params={"query": q, "time": str(t)}, headers=h.headers, timeout=30)
    r.raise_for_status()
    return r.json()["data"]


def test_kill9_restart_loads_the_window(tmp_path: Path) -> None:
    """Written over remote write, answered from the head, SIGKILL, restart: same answers."""
    cfg = {"pipeline": {"flush_interval": 5}}
    h = HeronProcess(tmp_path / "data", config=cfg).start()
    series = [{"__name__": "restart_total", "job": f"j{i % 3}", "i": str(i)} for i in range(12)]
    t = np.arange(NOW - 30 * 60_000, NOW, 15_000)
    body = encode_write_request([(s, [(int(x), float(k * j)) for j, x in enumerate(t)])
                                 for k, s in enumerate(series)])
    queries = ["sum by (job) (rate(restart_total[5m]))", "count(restart_total)",
               'restart_total{i=~"1.*"}']
    try:
        r = httpx.post(h.url + "/api/v1/write", content=body, headers={**h.headers, **REMOTE_WRITE_HEADERS})
        assert r.status_code == 204
        before = [_query(h, q, NOW / 1000) for q in queries]
        assert before[1]["result"][0]["value"][1] == "12"
        h.kill()
        h = HeronProcess(tmp_path / "data", config=cfg).start()
        metrics = httpx.get(h.url + "/metrics", headers=h.headers).text
        loaded = [ln for ln in metrics.splitlines() if ln.startswith("heron_head_samples ")]
        assert loaded and float(loaded[0].split()[1]) >= len(t) * len(series)  # (+ its self-scrape)
        after = [_query(h, q, NOW / 1000) for q in queries]
        assert after == before
        counted = _query(h, "sum(count_over_time(restart_total[1h]))", NOW / 1000)
        assert counted["result"][0]["value"][1] == str(len(t) * len(series))
        assert not math.isnan(float(after[0]["result"][0]["value"][1]))
    finally:
        h.stop()


def test_block_layout_follows_a_reference_through_rebase_and_eviction() -> None:
    """Random out-of-order writes, compactions, a re-base of the int32 offsets (days later) and
    evictions: every selection equals a plain dict of (series, ts) -> last value written."""
    rng = np.random.default_rng(11)
    series = make_series(30)
    head = Head(HOUR, tail_limit=10**9)
    t0 = NOW - HOUR // 2
    head.load(_EmptyStorage(), now_ms=t0)
    ref: dict[tuple[int, int], float] = {}
    now = t0
    for rnd in range(12):
        if rnd == 6:
            now += 8 * 24 * HOUR  # the int32 span needs a new base
        now += 10 * 60_000
        head._now_ms = (lambda n=now: lambda: n)()  # type: ignore[method-assign]
        for _ in range(3):
            idx = rng.choice(len(series), 10, replace=False)
            counts = rng.integers(1, 6, 10)
            ts = rng.integers(now - HOUR // 2, now + 1, int(counts.sum())) // 1000 * 1000
            vals = rng.random(len(ts)).round(2)
            head.append([series[i] for i in idx], counts, ts, vals)
            for i, t, v in zip(np.repeat(idx, counts).tolist(), ts.tolist(), vals.tolist(), strict=True):
                ref[(i, t)] = v
        if rnd % 2:
            head.compact(now_ms=now)
        ref = {k: v for k, v in ref.items() if k[1] >= now - HOUR} if rnd % 2 else ref
        lo = max(now - HOUR // 2, head.coverage_start or 0)
        for name in ("http_requests_total", "up"):
            got = head.select([[("__name__", "=", name)]], lo, now)
            assert got is not None
            labels, ts, vals, starts = got
            want: dict[Labels, list[tuple[int, float]]] = {}
            for (i, t), v in sorted(ref.items()):
                if dict(series[i])["__name__"] == name and lo <= t <= now:
                    want.setdefault(series[i], []).append((t, v))
            assert labels == sorted(want)
            for k, lb in enumerate(labels):
                pts = list(zip(ts[starts[k]:starts[k + 1]].tolist(), vals[starts[k]:starts[k + 1]].tolist(),
                               strict=True))
                assert pts == want[lb], (rnd, lb)
    assert head._state.base > t0  # re-based at least once
    head.close()


def test_load_after_early_writes_and_with_duplicate_rows(db: ChDBStorage) -> None:
    """Series written before the load get positions out of series-id order, and storage holds
    a duplicated row: the loaded block still equals storage."""
    series = make_series(40)
    data = make_data(series, BASE, NOW)
    write_series(db, data)
    write_series(db, [(lb, ts[-3:], v[-3:]) for lb, ts, v in data[5:8]])  # the same rows again
    head = Head(3 * HOUR, storage=db)
    early = [(lb, ts[-1:], v[-1:]) for lb, ts, v in data[::-3]]  # reversed: positions out of order
    feed(head, early)
    head.compact()
    head.load(db, chunk_rows=500)
    for groups in MATCHERS:
        got = select(db, groups, BASE, NOW, head=head)
        assert not same(got, drop_empty(select_storage(db, groups, BASE, NOW))), groups
    head.close()


def test_index_extends_cached_matches_with_new_series() -> None:
    """A cached resolution grown by the new series (no recompute) equals resolving from scratch."""
    from heron.metrics.head_index import HeadIndex

    series = make_series(200)
    rng = np.random.default_rng(5)
    order = rng.permutation(len(series))
    grown = HeadIndex()
    grown.positions([series[i] for i in order[:150]])
    groups = [[[(m.name, m.op, m.value) for m in grp] for grp in gs] for gs in MATCHERS]
    for g in groups:
        grown.resolve(g)
    for k in (150, 151, 170, 200):  # one series, then batches
        grown.positions([series[i] for i in order[:k]])
        fresh = HeadIndex()
        fresh.positions([series[i] for i in order[:k]])
        for g in groups:
            a, b = grown.resolve(g), fresh.resolve(g)
            assert (a is None and b is None) or (a is not None and b is not None and a.tolist() == b.tolist()), g


def test_tsdb_status_from_head_equals_sql(db: ChDBStorage) -> None:
    """/api/v1/status/tsdb answered from memory gives SQL's numbers when the head holds everything."""
    series = make_series(70)
    write_series(db, make_data(series, BASE, NOW))
    head = Head(3 * HOUR, storage=db)
    head.load(db)
    for limit in (3, 10):
        got, want = catalog.tsdb_status(db, limit, head=head), catalog.tsdb_status(db, limit)
        assert got == want, limit
    assert catalog.tsdb_status(db, 10, head=Head(HOUR)) == catalog.tsdb_status(db, 10)  # before its load: SQL
    head.close()


def test_index_positions_by_series_id() -> None:
    """The index finds series by id: ids given or computed agree, a series repeated in one write
    gets one position, empty label values are dropped from the stored set (its id is that of the
    set as written), and known series keep their positions."""
    from heron.metrics.head_index import HeadIndex
    from heron.metrics.model import series_id

    series = make_series(50)
    ids = np.array([series_id(s) for s in series], dtype=np.uint64)
    given, computed = HeadIndex(), HeadIndex()
    batch = series[:30] + series[:5]  # repeats in one write
    a = given.positions(batch, np.concatenate([ids[:30], ids[:5]]))
    b = computed.positions(batch)
    assert a.tolist() == b.tolist() == list(range(30)) + list(range(5))
    assert given.labels == computed.labels == series[:30]
    with_empty = ((*series[40], ("zz", "")),)  # an empty value: the stored set leaves it out
    got = given.positions([*series[25:35], with_empty[0]])
    assert got.tolist() == [*range(25, 30), *range(30, 35), 35]
    assert given.labels[35] == series[40]
    assert given.positions(series[:3], ids[:3]).tolist() == [0, 1, 2]
    assert len(given) == 36


@pytest.mark.parametrize("slice_min", [0, 10**9])
def test_select_slice_copy_and_gather_agree(monkeypatch: pytest.MonkeyPatch, slice_min: int) -> None:
    """Both ways of copying the block's segments (per-series slices for long series, one gathered
    index for short ones) give each series' samples in [mint, maxt], tail merged, last write winning."""
    import heron.metrics.head as head_mod

    monkeypatch.setattr(head_mod, "SLICE_COPY_MIN", slice_min)
    head = Head(3 * HOUR)
    head.load(_EmptyStorage())
    rng = np.random.default_rng(11)
    want: dict[Labels, dict[int, float]] = {}
    series = [labels_from({"__name__": "m", "i": f"{i:03d}"}) for i in range(40)]
    for rnd in range(3):
        lbs, counts, tss, vss = [], [], [], []
        for i, lb in enumerate(series[::-1] if rnd == 1 else series):  # positions not in label order
            n = int(rng.integers(0, 900)) if i % 6 else 0
            ts = np.sort(rng.choice(np.arange(NOW - 2 * HOUR, NOW, 1000), n, replace=False)).astype(np.int64)
            vs = rng.normal(size=n)
            lbs.append(lb), counts.append(n), tss.append(ts), vss.append(vs)
            for t, v in zip(ts.tolist(), vs.tolist(), strict=True):
                want.setdefault(lb, {})[t] = v
        head.append(lbs, counts, np.concatenate(tss), np.concatenate(vss))
        if rnd < 2:
            head.compact()  # the last round stays in the tail, overlapping the block
    assert head.stats()["tail"] > 0
    for mint, maxt in [(NOW - 2 * HOUR, NOW), (NOW - HOUR, NOW - HOUR // 2), (NOW - 5000, NOW - 5000)]:
        got = head.select([[("__name__", "=", "m")]], mint, maxt)
        assert got is not None
        labels, ts, vals, starts = got
        exp = {lb: sorted((t, v) for t, v in d.items() if mint <= t <= maxt) for lb, d in want.items()}
        exp = {lb: s for lb, s in exp.items() if s}
        assert labels == sorted(exp) and ts.dtype == np.int64 and len(starts) == len(labels) + 1
        for k, lb in enumerate(labels):
            a, b = starts[k], starts[k + 1]
            assert ts[a:b].tolist() == [t for t, _ in exp[lb]], (lb, mint, maxt)
            assert vals[a:b].tolist() == [v for _, v in exp[lb]], (lb, mint, maxt)
    head.close()
