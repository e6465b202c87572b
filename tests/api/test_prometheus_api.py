"""/api/v1 query API through the real ASGI stack: shapes, errors and status codes as Prometheus."""

from __future__ import annotations

import time

import httpx
import pytest

from heron.promql.testdata import load_series
from heron.server import Heron

DATA = """
http_requests_total{job="api", instance="a", code="200"} 0+10x20
http_requests_total{job="api", instance="a", code="500"} 0+1x20
http_requests_total{job="web", instance="b", code="200"} 0+5x20
up{job="api", instance="a"} 1x20
"""


@pytest.fixture
async def loaded(heron: Heron, client: httpx.AsyncClient) -> httpx.AsyncClient:
    load_series(heron.storage, DATA, interval=15, start=T0, head=heron.head)
    return client


# Recent data: samples older than the retention (15d) are dropped on insert by the TTL.
T0 = int(time.time()) // 3600 * 3600 - 7200


async def test_instant_query_shape(loaded: httpx.AsyncClient) -> None:
    r = await loaded.get("/api/v1/query", params={"query": "sum by (job) (http_requests_total)",
                                                   "time": str(T0 + 300)})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success" and body["data"]["resultType"] == "vector"
    got = {s["metric"]["job"]: s["value"] for s in body["data"]["result"]}
    assert got == {"api": [T0 + 300, "220"], "web": [T0 + 300, "100"]}


async def test_query_post_form_and_rfc3339(loaded: httpx.AsyncClient) -> None:
    rfc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0))
    r = await loaded.post("/api/v1/query", data={"query": "up", "time": rfc})
    assert r.status_code == 200
    res = r.json()["data"]["result"]
    assert res[0]["metric"] == {"__name__": "up", "instance": "a", "job": "api"}
    assert res[0]["value"] == [T0, "1"]


async def test_scalar_and_string(loaded: httpx.AsyncClient) -> None:
    r = await loaded.get("/api/v1/query", params={"query": "1/0", "time": "100"})
    assert r.json()["data"] == {"resultType": "scalar", "result": [100, "+Inf"]}
    r = await loaded.get("/api/v1/query", params={"query": '"x"', "time": "100.5"})
    assert r.json()["data"] == {"resultType": "string", "result": [100.5, "x"]}


async def test_query_range_matrix(loaded: httpx.AsyncClient) -> None:
    r = await loaded.post("/api/v1/query_range", data={
        "query": 'sum(rate(http_requests_total{code="500"}[1m])) / sum(rate(http_requests_total[1m]))',
        "start": str(T0 + 60), "end": str(T0 + 240), "step": "30s"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "matrix" and len(data["result"]) == 1
    vals = data["result"][0]["values"]
    assert [t for t, _ in vals] == [T0 + 60 + 30 * i for i in range(7)]
    assert all(float(v) == pytest.approx(1 / 16) for _, v in vals)


async def test_errors_match_prometheus(loaded: httpx.AsyncClient) -> None:
    r = await loaded.get("/api/v1/query", params={"query": "sum("})
    assert r.status_code == 400 and r.json()["errorType"] == "bad_data"
    r = await loaded.get("/api/v1/query_range", params={"query": "up", "start": "x", "end": "1", "step": "1"})
    assert r.status_code == 400
    assert r.json()["error"] == 'invalid parameter "start": cannot parse "x" to a valid timestamp'
    r = await loaded.get("/api/v1/query_range", params={"query": "up", "start": "0", "end": "100000",
                                                         "step": "1"})
    assert r.status_code == 400 and "11,000 points" in r.json()["error"]
    r = await loaded.get("/api/v1/query", params={
        "query": "http_requests_total + on(job) http_requests_total", "time": str(T0 + 60)})
    assert r.status_code == 422 and r.json()["errorType"] == "execution"
    r = await loaded.get("/api/v1/query_range", params={"query": "up[5m]", "start": "0", "end": "10",
                                                         "step": "1"})
    assert r.status_code == 400 and "range vector" in r.json()["error"]


async def test_unauthenticated_is_refused(heron: Heron) -> None:
    transport = httpx.ASGITransport(app=heron.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://heron") as c:
        r = await c.get("/api/v1/query", params={"query": "up"})
    assert r.status_code == 401 and r.json()["status"] == "error"


async def test_series_labels_values(loaded: httpx.AsyncClient) -> None:
    r = await loaded.get("/api/v1/series", params={"match[]": 'http_requests_total{code="200"}'})
    assert r.json()["data"] == [
        {"__name__": "http_requests_total", "code": "200", "instance": "a", "job": "api"},
        {"__name__": "http_requests_total", "code": "200", "instance": "b", "job": "web"}]
    r = await loaded.get("/api/v1/series")
    assert r.status_code == 400
    r = await loaded.get("/api/v1/labels")
    assert r.json()["data"] == ["__name__", "code", "instance", "job"]
    r = await loaded.get("/api/v1/labels", params={"match[]": "up"})
    assert r.json()["data"] == ["__name__", "instance", "job"]
    r = await loaded.get("/api/v1/label/job/values")
    assert r.json()["data"] == ["api", "web"]
    r = await loaded.get("/api/v1/label/__name__/values", params={"limit": "1"})
    assert r.json()["data"] == ["http_requests_total"]
    r = await loaded.get("/api/v1/label/code/values", params={"match[]": '{job="web"}'})
    assert r.json()["data"] == ["200"]
    # a time range with no samples finds nothing
    r = await loaded.get("/api/v1/label/job/values", params={"start": "0", "end": "100"})
    assert r.json()["data"] == []


async def test_status_and_format(loaded: httpx.AsyncClient) -> None:
    r = await loaded.get("/api/v1/status/tsdb")
    head = r.json()["data"]["headStats"]
    assert head["numSeries"] == 4 and head["minTime"] == T0 * 1000
    top = r.json()["data"]["seriesCountByMetricName"]
    assert top[0] == {"name": "http_requests_total", "value": 3}
    for path in ("buildinfo", "runtimeinfo", "flags"):
        r = await loaded.get(f"/api/v1/status/{path}")
        assert r.status_code == 200 and r.json()["status"] == "success"
    r = await loaded.get("/api/v1/format_query", params={"query": "sum(rate(foo[5m]))by(job)"})
    assert r.json()["data"] == "sum by (job) (rate(foo[5m]))"
    r = await loaded.get("/api/v1/query_exemplars", params={"query": "up", "start": "0", "end": "1"})
    assert r.json() == {"status": "success", "data": []}
    r = await loaded.get("/api/v1/metadata")
    assert r.status_code == 200 and r.json()["data"] == {}


async def test_limits_sample_cap_and_timeout(heron: Heron, loaded: httpx.AsyncClient) -> None:
    engine = heron.query_engine
    engine.max_samples = 10
    try:
        r = await loaded.get("/api/v1/query", params={"query": "count_over_time(http_requests_total[5m])",
                                                       "time": str(T0 + 300)})
        assert r.status_code == 422
        assert r.json()["errorType"] == "execution" and "too many samples" in r.json()["error"]
    finally:
        engine.max_samples = 50_000_000
    r = await loaded.get("/api/v1/query_range", params={
        "query": "max_over_time(rate(http_requests_total[1m])[5m:15s])", "start": str(T0),
        "end": str(T0 + 300), "step": "15", "timeout": "0.000001"})
    assert r.status_code == 503 and r.json()["errorType"] == "timeout"


async def test_hostile_queries_get_precise_errors(loaded: httpx.AsyncClient) -> None:
    for query in ('up{job=~"("}', "up @ 1e20", "sum(", 'label_replace(up, "x", "$1", "job", "(")',
                  "up[5m:0s]", "1 and 1"):
        r = await loaded.get("/api/v1/query", params={"query": query, "time": str(T0)})
        assert r.status_code in (400, 422), (query, r.status_code, r.text)
        body = r.json()
        assert body["status"] == "error" and body["errorType"] in ("bad_data", "execution") and body["error"]
