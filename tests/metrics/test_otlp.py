"""OTLP metrics: the real opentelemetry-sdk exporter pushing to Heron, values read back."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricExporter
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from heron.metrics.model import STALE_NAN_BITS
from heron.metrics.otlp import metric_name
from heron.server import Heron
from tests.conftest import ADMIN
from tests.metrics.helpers import Served, instant, samples


def _provider(exporter: MetricExporter | None, reader: InMemoryMetricReader | None = None,
              temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE) -> tuple[MeterProvider, object]:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    resource = Resource.create({"service.name": "checkout", "service.namespace": "shop",
                                "service.instance.id": "pod-1", "deployment.environment": "test"})
    views = [View(instrument_name="http.server.duration",
                  aggregation=ExplicitBucketHistogramAggregation(boundaries=[0.1, 1.0]))]
    if reader is None:
        assert exporter is not None
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)  # type: ignore[assignment]
    return MeterProvider(resource=resource, metric_readers=[reader], views=views), reader  # type: ignore[list-item]


def test_name_normalization() -> None:
    assert metric_name("http.server.duration", "s", "histogram") == "http_server_duration_seconds"
    assert metric_name("http.server.request.size", "By", "counter") == "http_server_request_size_bytes_total"
    assert metric_name("system.cpu.utilization", "1", "gauge") == "system_cpu_utilization_ratio"
    assert metric_name("requests", "{request}", "counter") == "requests_total"
    assert metric_name("requests_total", "", "counter") == "requests_total"
    assert metric_name("speed", "m/s", "gauge") == "speed_meters_per_second"
    assert metric_name("latency_seconds", "s", "gauge") == "latency_seconds"
    assert metric_name("2xx.count", "", "gauge") == "_2xx_count"


async def test_sdk_export_cumulative(heron: Heron) -> None:
    async with Served(heron) as srv:
        exporter = OTLPMetricExporter(endpoint=f"{srv.url}/v1/metrics", headers=ADMIN)
        provider, reader = _provider(exporter)
        meter = provider.get_meter("test")
        requests = meter.create_counter("app.requests", unit="{request}", description="Requests served")
        inflight = meter.create_up_down_counter("app.inflight")
        latency = meter.create_histogram("http.server.duration", unit="s")
        requests.add(3, {"route": "/a"})
        inflight.add(5)
        inflight.add(-2)
        for v in (0.05, 0.5, 2.0):
            latency.record(v, {"route": "/a"})
        assert await asyncio.to_thread(reader.force_flush)  # type: ignore[attr-defined]
        requests.add(4, {"route": "/a"})
        assert await asyncio.to_thread(reader.force_flush)  # type: ignore[attr-defined]
        await asyncio.to_thread(provider.shutdown)
    rows = await samples(heron)
    by = {}
    for r in rows:
        by.setdefault(r["metric"], []).append(r)
    assert [r["value"] for r in by["app_requests_total"]] == [3.0, 7.0, 7.0][: len(by["app_requests_total"])]
    req = by["app_requests_total"][0]["labels"]
    assert req == {"__name__": "app_requests_total", "route": "/a", "job": "shop/checkout", "instance": "pod-1"}
    assert by["app_inflight"][0]["value"] == 3.0
    buckets = {r["labels"]["le"]: r["value"] for r in by["http_server_duration_seconds_bucket"][:3]}
    assert buckets == {"0.1": 1.0, "1": 2.0, "+Inf": 3.0}
    assert by["http_server_duration_seconds_count"][0]["value"] == 3.0
    assert abs(by["http_server_duration_seconds_sum"][0]["value"] - 2.55) < 1e-9
    info = by["target_info"][0]["labels"]
    assert info["deployment_environment"] == "test" and info["job"] == "shop/checkout"
    assert "service_name" not in info
    meta = (await asyncio.to_thread(heron.storage.execute,
            f"SELECT metric, type, help FROM `{heron.storage.database}`.metric_metadata FINAL "
            "WHERE metric = 'app_requests_total'")).to_pylist()
    assert meta == [{"metric": "app_requests_total", "type": "counter", "help": "Requests served"}]
    [res] = await instant(heron, 'app_requests_total{job="shop/checkout"}')
    assert float(res["value"][1]) == 7.0
    [res] = await instant(heron, 'http_server_duration_seconds_bucket{le="1"}')
    assert float(res["value"][1]) == 2.0


async def test_delta_becomes_cumulative_and_json_gzip(heron: Heron, client: httpx.AsyncClient) -> None:
    reader = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA,
                                                         Histogram: AggregationTemporality.DELTA,
                                                         UpDownCounter: AggregationTemporality.DELTA})
    provider, _ = _provider(None, reader)
    c = provider.get_meter("t").create_counter("jobs.done")
    bodies = []
    for n in (2, 5):
        c.add(n)
        data = reader.get_metrics_data()
        from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics

        bodies.append(encode_metrics(data))
        time.sleep(0.01)
    # One export as protobuf, the next as gzip'd OTLP/JSON.
    r = await client.post("/v1/metrics", content=bodies[0].SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200
    from google.protobuf import json_format

    doc = json.dumps(json_format.MessageToDict(bodies[1])).encode()
    r = await client.post("/v1/metrics", content=gzip.compress(doc),
                          headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json() == {}
    rows = [r for r in await samples(heron) if r["metric"] == "jobs_done_total"]
    assert [r["value"] for r in rows] == [2.0, 7.0]


async def test_exponential_histograms_rejected_clearly_and_bad_payloads(heron: Heron,
                                                                        client: httpx.AsyncClient) -> None:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    m = rm.scope_metrics.add().metrics.add()
    m.name = "exp"
    p = m.exponential_histogram.data_points.add()
    p.count = 1
    g = rm.scope_metrics[0].metrics.add()
    g.name = "ok_gauge"
    gp = g.gauge.data_points.add()
    gp.as_double = 1.5
    gp.time_unix_nano = time.time_ns()
    stale = g.gauge.data_points.add()
    stale.flags = 1
    stale.time_unix_nano = time.time_ns() + 1_000_000
    r = await client.post("/v1/metrics", content=req.SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200
    resp = ExportMetricsServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_data_points == 1
    assert "exponential histograms are not supported" in resp.partial_success.error_message
    rows = [r for r in await samples(heron) if r["metric"] == "ok_gauge"]
    assert rows[0]["value"] == 1.5 and rows[1]["bits"] == STALE_NAN_BITS

    r = await client.post("/v1/metrics", content=b"\xff\xff\xff", headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400
    r = await client.post("/v1/metrics", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    r = await client.post("/v1/metrics", content=b"", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


async def test_cumulative_counter_reset_after_sdk_restart(heron: Heron, client: httpx.AsyncClient) -> None:
    """A restarted process starts its cumulative counter again with a newer start time: Heron
    writes a 0 at that start time (as Prometheus' OTLP receiver does), so rate() and resets()
    see the reset even when the new value (20) is above the old one (15)."""
    from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics

    starts = []
    for adds in ((10, 5), (20,)):  # first process: 10 then 15; restarted process: 20
        reader = InMemoryMetricReader()
        provider, _ = _provider(None, reader)
        counter = provider.get_meter("t").create_counter("orders", unit="1")
        for n in adds:
            counter.add(n)
            time.sleep(0.005)  # collected after the start (a 0 at a start equal to the point is skipped)
            data = reader.get_metrics_data()
            starts.append(data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
                          .start_time_unix_nano // 1_000_000)
            r = await client.post("/v1/metrics", content=encode_metrics(data).SerializeToString(),
                                  headers={"Content-Type": "application/x-protobuf"})
            assert r.status_code == 200
            time.sleep(0.002)
        provider.shutdown()
    rows = [r for r in await samples(heron) if r["metric"] == "orders_total"]
    assert [r["value"] for r in rows] == [10.0, 15.0, 0.0, 20.0]
    assert starts[0] == starts[1] < starts[2] and rows[2]["ts"] == starts[2]
    [res] = await instant(heron, "resets(orders_total[1h])")
    assert float(res["value"][1]) == 1.0


async def test_delta_totals_continue_after_a_restart(tmp_path: Path) -> None:
    """Running totals of delta sums are rebuilt from storage: after a restart the counter goes on
    (2, 7, then 10), it does not start again from 3 (which queries would read as a reset)."""
    from tests.conftest import make_config

    config = make_config(tmp_path, self_scrape=False)
    now = time.time_ns()

    def delta(value: int, k: int) -> bytes:
        req = ExportMetricsServiceRequest()
        m = req.resource_metrics.add().scope_metrics.add().metrics.add()
        m.name = "restarts.jobs"
        m.sum.is_monotonic, m.sum.aggregation_temporality = True, 1  # DELTA
        p = m.sum.data_points.add(as_int=value, time_unix_nano=now + k * 1_000_000_000)
        p.start_time_unix_nano = p.time_unix_nano - 1_000_000_000
        return req.SerializeToString()

    k = 0
    for values in ((2, 5), (3,)):
        heron = Heron(config)  # type: ignore[arg-type]
        await heron.start()
        try:
            transport = httpx.ASGITransport(app=heron.app())
            async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=ADMIN) as client:
                for v in values:
                    r = await client.post("/v1/metrics", content=delta(v, k),
                                          headers={"Content-Type": "application/x-protobuf"})
                    assert r.status_code == 200, r.text
                    k += 1
            rows = [r["value"] for r in await samples(heron) if r["metric"] == "restarts_jobs_total"]
        finally:
            await heron.stop()
    assert rows == [2.0, 7.0, 10.0]


def test_newer_start_time_writes_a_zero_for_every_cumulative_series() -> None:
    """Histogram buckets, _sum and _count and summary _sum/_count get the 0 at the new start
    time; the same or an older start time, a start not before the point, deltas and gauges
    get none."""
    from heron.metrics.otlp import DeltaToCumulative, convert

    s = 1_700_000_000_000_000_000
    sec = 1_000_000_000

    def request(start: int, t: int) -> ExportMetricsServiceRequest:
        req = ExportMetricsServiceRequest()
        ms = req.resource_metrics.add().scope_metrics.add().metrics
        h = ms.add(name="lat", unit="s")
        h.histogram.aggregation_temporality = 2
        h.histogram.data_points.add(start_time_unix_nano=start, time_unix_nano=t, count=3, sum=1.5,
                                    bucket_counts=[1, 2], explicit_bounds=[0.5])
        q = ms.add(name="q")
        q.summary.data_points.add(start_time_unix_nano=start, time_unix_nano=t, count=2, sum=1.0)
        g = ms.add(name="g")
        g.gauge.data_points.add(start_time_unix_nano=start, time_unix_nano=t, as_double=1.0)
        d = ms.add(name="d")
        d.sum.is_monotonic, d.sum.aggregation_temporality = True, 1
        d.sum.data_points.add(start_time_unix_nano=start, time_unix_nano=t, as_int=1)
        return req

    acc = DeltaToCumulative()
    zeros = []
    for start, t in ((s, s + 10 * sec), (s, s + 20 * sec), (s + 25 * sec, s + 30 * sec),
                     (s + 5 * sec, s + 40 * sec), (s + 50 * sec, s + 50 * sec)):
        c = convert(request(start, t))
        n = len(c.series)
        values = acc.apply(c)
        zeros.append(sorted((dict(c.series[i])["__name__"], c.ts[i], float(values[i])) for i in range(n, len(c.series))))
    reset_ms = (s + 25 * sec) // 1_000_000
    assert zeros[2] == [("lat_seconds_bucket", reset_ms, 0.0), ("lat_seconds_bucket", reset_ms, 0.0),
                        ("lat_seconds_count", reset_ms, 0.0), ("lat_seconds_sum", reset_ms, 0.0),
                        ("q_count", reset_ms, 0.0), ("q_sum", reset_ms, 0.0)]
    assert zeros[0] == zeros[1] == zeros[3] == zeros[4] == [] and acc.resets == 6
