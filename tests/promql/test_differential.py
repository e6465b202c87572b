"""Differential tests: the same data in the real Prometheus (2.42, Debian) and in Heron.

Fixed production queries (rule and dashboard queries of a web backend) plus a seeded random
query generator run as query_range and instant queries on both; results must match: same label
sets, same order for matrices, values within a relative 1e-9. Samples sit half a scrape interval
off the step grid, where 2.x's closed and 3.x's left-open windows agree.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from heron.promql.testdata import write_series
from heron.server import Heron
from tests.promql.peer import PROMETHEUS, PROMTOOL, PrometheusProcess, web_backend_data

pytestmark = [pytest.mark.peer, pytest.mark.skipif(not (PROMETHEUS and PROMTOOL),
                                                   reason="prometheus/promtool not installed")]

# Data from BASE for 4h; queries look at [BASE+2h, BASE+3.5h], so no window (offsets and
# subqueries included) reaches the first sample, where 2.x and 3.x extrapolate rate differently.
# The query grid sits 7s off the minute: a subquery's inner steps then never fall exactly on its
# range start, which 2.x includes (closed) and 3.x excludes (left-open).
BASE_MS = (int(time.time()) // 3600 * 3600 - 5 * 3600) * 1000
START = BASE_MS / 1000 + 7200 + 7
END = BASE_MS / 1000 + 12600 + 7

QUERIES = [
    "up",
    "up == 0",
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum by (job, code) (increase(http_requests_total[10m]))",
    'sum by (job) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m]))',
    'rate(http_requests_total{code="500"}[5m]) / ignoring(code) group_left '
    'sum without (code) (rate(http_requests_total[5m]))',
    "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(http_request_duration_seconds_bucket[10m]))",
    "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])",
    "topk(3, sum by (instance) (rate(http_requests_total[5m])))",
    "bottomk(2, process_resident_memory_bytes)",
    "avg_over_time(process_resident_memory_bytes[10m])",
    "max_over_time(process_resident_memory_bytes[15m]) - min_over_time(process_resident_memory_bytes[15m])",
    "quantile_over_time(0.9, process_resident_memory_bytes[10m])",
    "stddev_over_time(process_resident_memory_bytes[10m])",
    "deriv(process_resident_memory_bytes[10m])",
    "predict_linear(process_resident_memory_bytes[30m], 3600)",
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "avg_over_time(sum by (job) (rate(http_requests_total[2m]))[10m:30s])",
    "sum by (job) (rate(http_requests_total[5m] offset 30m))",
    "sum by (job) (rate(http_requests_total[5m])) / sum by (job) (rate(http_requests_total[5m] offset 1h))",
    'absent(up{job="nope"})',
    'absent(batch_last_success_timestamp{job="batch"})',
    "time() - batch_last_success_timestamp > 600",
    "resets(http_requests_total[30m])",
    "changes(up[30m])",
    "irate(http_requests_total[1m])",
    "idelta(process_resident_memory_bytes[2m])",
    "delta(process_resident_memory_bytes[10m])",
    "count by (job) (up == 1)",
    'count_values("value", up)',
    "quantile by (job) (0.9, rate(http_requests_total[5m]))",
    "stddev by (job) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total[5m])) by (method) > bool 50",
    'label_replace(up, "host", "$1", "instance", "(.*):.*")',
    'label_join(up, "id", "/", "job", "instance")',
    "clamp_max(rate(http_requests_total[5m]), 10)",
    "round(rate(http_requests_total[5m]), 0.1)",
    "sum by (job) (rate(http_requests_total[5m])) and on(job) (sum by (job) (up) > 2)",
    "up unless on(instance) (process_resident_memory_bytes > 2e8)",
    "vector(1) or up",
    "scalar(sum(up)) * up",
    "holt_winters(process_resident_memory_bytes[10m], 0.5, 0.5)",
    "present_over_time(batch_last_success_timestamp[10m])",
    "absent_over_time(batch_last_success_timestamp[10m])",
    "last_over_time(batch_last_success_timestamp[1h])",
    "timestamp(up)",
    "count_over_time(up[7m])",
    "sum_over_time(up[7m])",
    "group by (job) (up)",
    "sort_desc(sum by (job) (up))",
]
# Not compared: topk/bottomk over equal values. Heron runs Prometheus' heap over its input order,
# but 2.42 feeds the heap in an order Heron does not reproduce, so tied series differ.


@pytest.fixture(scope="module")
def data() -> list[Any]:
    return web_backend_data(BASE_MS, minutes=240, batch_stop_minutes=165)


@pytest.fixture(scope="module")
def prometheus(data: list[Any]) -> Iterator[PrometheusProcess]:
    with PrometheusProcess(data) as p:
        yield p


@pytest.fixture
async def heron_api(heron: Heron, client: httpx.AsyncClient, data: list[Any]) -> AsyncIterator[Any]:
    write_series(heron.storage, data, heron.head)
    yield client


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if x == y:
        return True
    return abs(x - y) <= 1e-9 * max(abs(x), abs(y))


def compare(expr: str, prom: dict[str, Any], heron: dict[str, Any], ordered: bool) -> str:
    if prom.get("status") != "success":
        return "" if heron.get("status") == "error" else f"prometheus failed ({prom.get('error')}), heron did not"
    if heron.get("status") != "success":
        return f"heron failed: {heron.get('error')}"
    pd, hd = prom["data"], heron["data"]
    if pd["resultType"] != hd["resultType"]:
        return f"result type {hd['resultType']} != {pd['resultType']}"
    if pd["resultType"] == "scalar":
        ok = pd["result"][0] == hd["result"][0] and _close(pd["result"][1], hd["result"][1])
        return "" if ok else f"scalar {hd['result']} != {pd['result']}"
    key = "values" if pd["resultType"] == "matrix" else "value"
    pm = [(tuple(sorted(s["metric"].items())), s[key]) for s in pd["result"]]
    hm = [(tuple(sorted(s["metric"].items())), s[key]) for s in hd["result"]]
    # Ordered results (sort, topk): Prometheus orders by value only, equal values in any order.
    if ordered and len(pm) == len(hm) and not all(
            _close(a[1], b[1]) for (_, a), (_, b) in zip(pm, hm, strict=True)):
        return f"order of values differs: {[v for _, v in hm][:5]} vs {[v for _, v in pm][:5]}"
    pm.sort()
    hm.sort()
    if [k for k, _ in pm] != [k for k, _ in hm]:
        return f"label sets differ:\n prom  {[k for k, _ in pm][:6]}\n heron {[k for k, _ in hm][:6]}"
    for (k, pv), (_, hv) in zip(pm, hm, strict=True):
        pts_p = pv if key == "values" else [pv]
        pts_h = hv if key == "values" else [hv]
        if [t for t, _ in pts_p] != [t for t, _ in pts_h]:
            return f"{dict(k)}: timestamps differ ({len(pts_p)} vs {len(pts_h)} points)"
        for (t, a), (_, b) in zip(pts_p, pts_h, strict=True):
            if not _close(a, b):
                return f"{dict(k)} @ {t}: heron {b} != prometheus {a}"
    return ""


async def _check(prometheus: PrometheusProcess, api: httpx.AsyncClient, exprs: list[str],
                 steps: tuple[int, ...] = (60, 15)) -> list[str]:
    failures = []
    for expr in exprs:
        for step in steps:
            params = {"query": expr, "start": str(START), "end": str(END), "step": str(step)}
            prom = prometheus.query("query_range", params)
            heron = (await api.post("/api/v1/query_range", data=params)).json()
            why = compare(expr, prom, heron, ordered=False)  # matrices: both sorted by labels
            if why:
                failures.append(f"range step={step} {expr}: {why}")
                break
        for t in (START + 7.5 * 60, END):
            params = {"query": expr, "time": str(t)}
            prom = prometheus.query("query", params)
            heron = (await api.post("/api/v1/query", data=params)).json()
            ordered = expr.startswith(("sort", "topk", "bottomk"))
            why = compare(expr, prom, heron, ordered=ordered)
            if why:
                failures.append(f"instant @{t} {expr}: {why}")
                break
    return failures


async def test_production_queries_match_prometheus(prometheus: PrometheusProcess, heron_api: Any) -> None:
    failures = await _check(prometheus, heron_api, QUERIES)
    assert not failures, "\n".join(failures)


def random_queries(seed: int, n: int) -> list[str]:
    """Seeded random PromQL over the web backend metrics: functions, aggregations, binops."""
    rnd = random.Random(seed)
    counters = ['http_requests_total', 'http_requests_total{code="200"}', 'http_requests_total{method!="GET"}',
                'http_requests_total{code=~"4..|5.."}', "http_request_duration_seconds_count"]
    gauges = ["process_resident_memory_bytes", "up", 'up{job=~"svc[12]"}']
    ranges = ["1m", "2m", "5m", "10m", "30m"]
    aggs = ["sum", "avg", "max", "min", "count", "stddev", "stdvar", "group"]
    labels = ["job", "instance", "code", "method"]

    def vec() -> str:
        c = rnd.random()
        if c < 0.35:
            f = rnd.choice(["rate", "increase", "irate", "resets"])
            return f"{f}({rnd.choice(counters)}[{rnd.choice(ranges)}])"
        if c < 0.6:
            f = rnd.choice(["avg_over_time", "max_over_time", "min_over_time", "sum_over_time",
                            "count_over_time", "last_over_time", "stddev_over_time", "changes",
                            "delta", "deriv", "idelta"])
            return f"{f}({rnd.choice(gauges)}[{rnd.choice(ranges)}])"
        if c < 0.7:
            off = rnd.choice(["", " offset 5m", " offset 30m"])
            return f"{rnd.choice(gauges)}{off}"
        inner = vec()
        return f"{rnd.choice(['abs', 'ceil', 'floor', 'sqrt', 'ln', 'exp', 'sgn'])}({inner})"

    def agg(e: str) -> str:
        by = rnd.sample(labels, rnd.randint(1, 2))
        kind = rnd.choice(["by", "without"])
        return f"{rnd.choice(aggs)} {kind} ({', '.join(by)}) ({e})"

    out = []
    for _ in range(n):
        c = rnd.random()
        if c < 0.3:
            q = agg(vec())
        elif c < 0.55:
            op = rnd.choice(["+", "-", "*", "/", ">", "<", "> bool", "== bool"])
            lbl = rnd.choice(["job", "instance"])
            q = f"sum by ({lbl}) ({vec()}) {op} on({lbl}) sum by ({lbl}) ({vec()})"
        elif c < 0.7:
            q = f"{vec()} {rnd.choice(['*', '/', '+', '>', '<=', '!= bool'])} {rnd.choice(['2', '0.5', '100', '1e6'])}"
        elif c < 0.8:  # over continuous values: Prometheus breaks ties by its heap's internals
            inner = f"{rnd.choice(['rate', 'increase'])}({rnd.choice(counters)}[{rnd.choice(ranges)}])"
            q = f"{rnd.choice(['topk', 'bottomk'])}({rnd.randint(1, 4)}, sum by (job, code) ({inner}))"
        elif c < 0.9:
            f = rnd.choice(["max_over_time", "avg_over_time", "min_over_time"])
            q = f"{f}({agg(vec())}[{rnd.choice(['10m', '20m'])}:{rnd.choice(['1m', '30s', '2m'])}])"
        else:
            q = f"{vec()} {rnd.choice(['and', 'or', 'unless'])} {vec()}"
        out.append(q)
    return out


async def test_random_queries_match_prometheus(prometheus: PrometheusProcess, heron_api: Any) -> None:
    failures = await _check(prometheus, heron_api, random_queries(seed=4, n=50), steps=(30,))
    assert not failures, "\n".join(failures)
