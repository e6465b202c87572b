"""Exemplars from every metrics receiver, read back through /api/v1/query_exemplars."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cramjam
import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from heron.metrics.proto import remote_pb2, write_v2_pb2
from heron.server import Heron
from tests.conftest import ADMIN
from tests.metrics import peers
from tests.metrics.helpers import Served, serve_wsgi
from tests.metrics.test_remote_write import HEADERS
from tests.metrics.test_scrape import SwappableApp, start_heron, wait_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def exemplars(client: httpx.AsyncClient, query: str, **params: Any) -> Any:
    r = await client.get("/api/v1/query_exemplars", params={"query": query, **params})
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def test_remote_write_1_and_2_exemplars(heron: Heron, client: httpx.AsyncClient) -> None:
    now = int(time.time() * 1000)
    req = remote_pb2.WriteRequest()
    t = req.timeseries.add()
    for k, v in (("__name__", "rw_ex_total"), ("job", "a")):
        t.labels.add(name=k, value=v)
    t.samples.add(timestamp=now, value=3.0)
    e = t.exemplars.add(value=1.5, timestamp=now - 500)
    e.labels.add(name="trace_id", value=TRACE)
    # As Prometheus sends them: exemplars in a TimeSeries of their own, without samples.
    t = req.timeseries.add()
    for k, v in (("__name__", "rw_ex_total"), ("job", "b")):
        t.labels.add(name=k, value=v)
    t.exemplars.add(value=2.0, timestamp=now).labels.add(name="traceID", value="abc")
    r = await client.post("/api/v1/write", content=bytes(cramjam.snappy.compress_raw(req.SerializeToString())),
                          headers=HEADERS)
    assert r.status_code == 204, r.text

    v2 = write_v2_pb2.Request(symbols=["", "__name__", "rw2_ex", "trace_id", "feed", "job", "c"])
    s = v2.timeseries.add(labels_refs=[1, 2, 5, 6])
    s.samples.add(value=7.0, timestamp=now)
    s.exemplars.add(labels_refs=[3, 4], value=7.0, timestamp=now)
    headers = {**HEADERS, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}
    r = await client.post("/api/v1/write", content=bytes(cramjam.snappy.compress_raw(v2.SerializeToString())),
                          headers=headers)
    assert r.status_code == 204 and r.headers["X-Prometheus-Remote-Write-Exemplars-Written"] == "1"
    heron.pipeline.flush()

    start, end = (now - 60_000) / 1000, (now + 60_000) / 1000
    data = await exemplars(client, 'sum(rate(rw_ex_total[5m])) / on() group_left rw2_ex{job="c"}',
                           start=start, end=end)
    assert data == [
        {"seriesLabels": {"__name__": "rw2_ex", "job": "c"},
         "exemplars": [{"labels": {"trace_id": "feed"}, "value": "7", "timestamp": now / 1000}]},
        {"seriesLabels": {"__name__": "rw_ex_total", "job": "a"},
         "exemplars": [{"labels": {"trace_id": TRACE}, "value": "1.5", "timestamp": (now - 500) / 1000}]},
        {"seriesLabels": {"__name__": "rw_ex_total", "job": "b"},
         "exemplars": [{"labels": {"traceID": "abc"}, "value": "2", "timestamp": now / 1000}]},
    ]
    trace_ids = heron.storage.execute(
        f"SELECT trace_id FROM `{heron.storage.database}`.metric_exemplars ORDER BY trace_id").column(0).to_pylist()
    assert trace_ids == [TRACE, "abc", "feed"]
    # Outside the time range, or a selector that matches nothing: empty; bad input: Prometheus' errors.
    assert await exemplars(client, "rw_ex_total", start=start - 3600, end=start - 1800) == []
    assert await exemplars(client, 'rw_ex_total{job="zzz"}') == []
    r = await client.get("/api/v1/query_exemplars", params={"query": "rw_ex_total", "start": "10", "end": "5"})
    assert r.status_code == 400 and "end timestamp must not be before start time" in r.json()["error"]
    r = await client.get("/api/v1/query_exemplars", params={"query": "sum(("})
    assert r.status_code == 400 and r.json()["errorType"] == "bad_data"


def _exemplar_app() -> tuple[SwappableApp, Counter, Histogram]:
    reg = CollectorRegistry()
    c = Counter("ex_requests", "Requests.", ["path"], registry=reg)
    c.labels("/a").inc(2, exemplar={"trace_id": TRACE})
    h = Histogram("ex_latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=reg)
    h.observe(0.5, exemplar={"trace_id": "0af7651916cd43dd8448eb211c80319c"})
    return SwappableApp(reg), c, h


async def test_scraped_openmetrics_exemplars(tmp_path: Path) -> None:
    """Exemplars of an OpenMetrics scrape are stored; a job whose scrape_protocols asks for the
    text format only gets text (its Accept header says so), hence no exemplars."""
    app, _, _ = _exemplar_app()
    accepts: dict[str, str] = {}

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        accepts[environ.get("QUERY_STRING", "")] = environ.get("HTTP_ACCEPT", "")
        return app(environ, start_response)

    with serve_wsgi(recording) as target:
        heron = await start_heron(tmp_path, [
            {"job_name": "app", "scrape_interval": "1s", "static_configs": [{"targets": [target]}]},
            {"job_name": "text", "scrape_interval": "1s", "params": {"job": ["text"]},
             "scrape_protocols": ["PrometheusText0.0.4"], "static_configs": [{"targets": [target]}]}])
        try:
            transport = httpx.ASGITransport(app=heron.app())
            async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=ADMIN) as client:
                async def found() -> Any:
                    heron.pipeline.flush()
                    data = await exemplars(client, '{__name__=~"ex_.*"}')
                    return data if len(data) == 2 and "job=text" in accepts else None
                data = await wait_for(found, timeout=20)
        finally:
            await heron.stop()
    assert accepts["job=text"] == "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
    assert accepts[""].startswith("application/openmetrics-text;version=1.0.0;q=0.6,")
    assert {d["seriesLabels"]["job"] for d in data} == {"app"}  # none from the text-format job
    by_name = {d["seriesLabels"]["__name__"]: d for d in data}
    counter = by_name["ex_requests_total"]
    assert counter["seriesLabels"] == {"__name__": "ex_requests_total", "path": "/a", "job": "app",
                                       "instance": target}
    assert counter["exemplars"][0]["labels"] == {"trace_id": TRACE}
    assert counter["exemplars"][0]["value"] == "2"
    bucket = by_name["ex_latency_seconds_bucket"]
    assert bucket["seriesLabels"]["le"] == "1.0"  # the bucket the observation fell in
    assert bucket["exemplars"][0]["value"] == "0.5"


@pytest.mark.peer
@pytest.mark.skipif(not peers.have(peers.PROMETHEUS), reason="prometheus binary not installed")
async def test_real_prometheus_remote_writes_exemplars(heron: Heron, client: httpx.AsyncClient) -> None:
    """Prometheus (exemplar storage on, send_exemplars) scrapes an OpenMetrics app and remote-writes
    to Heron: Heron's query_exemplars answer equals Prometheus' own for the same query."""
    app, _, _ = _exemplar_app()
    with serve_wsgi(app) as target:
        async with Served(heron) as srv:
            config: dict[str, Any] = {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": [target]}]}],
                "remote_write": [{"url": f"{srv.url}/api/v1/write", "send_exemplars": True,
                                  "authorization": {"credentials": ADMIN["Authorization"].split()[1]},
                                  "queue_config": {"batch_send_deadline": "500ms"}}],
            }
            with peers.prometheus(config, "--enable-feature=exemplar-storage") as prom:
                query = 'ex_requests_total{path="/a"}'

                async def both() -> Any:
                    heron.pipeline.flush()
                    ours = await exemplars(client, query)
                    theirs = httpx.get(f"{prom.url}/api/v1/query_exemplars", params={"query": query}).json()["data"]
                    return (ours, theirs) if ours and theirs else None
                ours, theirs = await wait_for(both, timeout=30)
    assert ours[0]["seriesLabels"] == {"__name__": "ex_requests_total", "path": "/a", "job": "app",
                                       "instance": target}
    assert ours[0]["exemplars"][0]["labels"] == {"trace_id": TRACE}
    assert ours == theirs


async def test_otlp_sdk_exemplars_of_a_traced_request(heron: Heron, client: httpx.AsyncClient) -> None:
    """The real opentelemetry-sdk records exemplars for measurements made inside a sampled span
    (trace_based filter): they arrive with the span's trace_id/span_id, on the counter's series and
    on the histogram bucket the value falls in."""
    import asyncio

    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    async with Served(heron) as srv:
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{srv.url}/v1/metrics", headers=ADMIN),
                                               export_interval_millis=3_600_000)
        provider = MeterProvider(resource=Resource.create({"service.name": "shop"}), metric_readers=[reader],
                                 views=[View(instrument_name="op.duration",
                                             aggregation=ExplicitBucketHistogramAggregation(boundaries=[0.1, 1.0]))])
        meter = provider.get_meter("t")
        ops, duration = meter.create_counter("ops"), meter.create_histogram("op.duration", unit="s")
        tracer = TracerProvider().get_tracer("t")
        with tracer.start_as_current_span("op") as span:
            ops.add(1, {"kind": "x"})
            duration.record(0.5, {"kind": "x"})
            ctx = span.get_span_context()
        assert await asyncio.to_thread(reader.force_flush)
        await asyncio.to_thread(provider.shutdown)
    heron.pipeline.flush()
    trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    data = await exemplars(client, 'ops_total or op_duration_seconds_bucket{le="1"}')
    assert [{k: v for k, v in d["seriesLabels"].items() if k != "instance"} for d in data] == [
        {"__name__": "op_duration_seconds_bucket", "job": "shop", "kind": "x", "le": "1"},
        {"__name__": "ops_total", "job": "shop", "kind": "x"}]
    assert [(e["labels"], e["value"]) for d in data for e in d["exemplars"]] == [
        ({"trace_id": trace_id, "span_id": span_id}, "0.5"), ({"trace_id": trace_id, "span_id": span_id}, "1")]


async def test_exemplar_buffer_per_series_keeps_the_newest(tmp_path: Path) -> None:
    """limits.metrics.max_exemplars_per_series: 3 -> a series answers with its 3 newest
    exemplars (a circular buffer, as Prometheus' exemplar storage); a repeat of the newest is
    a duplicate and an older one is out of order: neither is stored; every drop is counted."""
    from tests.conftest import make_config

    config = make_config(tmp_path, limits={"metrics": {"max_exemplars_per_series": 3}},  # type: ignore[arg-type]
                         self_scrape=False)
    heron = Heron(config)  # type: ignore[arg-type]
    await heron.start()
    try:
        transport = httpx.ASGITransport(app=heron.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=ADMIN) as client:
            now = int(time.time() * 1000)

            async def send(*stamps: int, job: str = "a") -> None:
                req = remote_pb2.WriteRequest()
                t = req.timeseries.add()
                for k, v in (("__name__", "buf_total"), ("job", job)):
                    t.labels.add(name=k, value=v)
                t.samples.add(timestamp=now, value=1.0)
                for ts in stamps:
                    t.exemplars.add(value=1.0, timestamp=now - 10_000 + ts).labels.add(name="trace_id", value=f"t{ts}")
                r = await client.post("/api/v1/write", headers=HEADERS,
                                      content=bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
                assert r.status_code == 204, r.text

            await send(1, 2)
            await send(3)
            await send(4, 5, 5)  # the second 5: a duplicate in the same request
            await send(2)  # older than the newest: out of order
            await send(9, job="b")  # another series has a buffer of its own
            heron.pipeline.flush()
            data = await exemplars(client, "buf_total", start=(now - 60_000) / 1000, end=(now + 60_000) / 1000)
            kept = {d["seriesLabels"]["job"]: [e["labels"]["trace_id"] for e in d["exemplars"]] for d in data}
            assert kept == {"a": ["t3", "t4", "t5"], "b": ["t9"]}
            # A range holding only evicted exemplars answers nothing for the series.
            early = await exemplars(client, 'buf_total{job="a"}', start=(now - 60_000) / 1000,
                                    end=(now - 10_000 + 2) / 1000)
            assert early == []
            text = (await client.get("/metrics")).text
            for reason, n in (("evicted", 2), ("duplicate", 1), ("out_of_order", 1)):
                assert f'heron_metric_exemplars_dropped_total{{reason="{reason}"}} {n}.0' in text
    finally:
        await heron.stop()


async def test_exemplar_buffers_survive_a_restart(tmp_path: Path) -> None:
    """After a restart the per-series rules go on from what storage holds: the newest exemplar
    sent again is a duplicate, an older one is out of order (neither stored), a newer one is
    kept, and the buffer fill carries over (the cap of 2 evicts the oldest at once)."""
    from tests.conftest import make_config

    config = make_config(tmp_path, limits={"metrics": {"max_exemplars_per_series": 2}},  # type: ignore[arg-type]
                         self_scrape=False)
    now = int(time.time() * 1000)

    async def send(client: httpx.AsyncClient, *stamps: int) -> None:
        req = remote_pb2.WriteRequest()
        t = req.timeseries.add()
        for k, v in (("__name__", "restart_total"), ("job", "a")):
            t.labels.add(name=k, value=v)
        for ts in stamps:
            t.exemplars.add(value=1.0, timestamp=now - 10_000 + ts).labels.add(name="trace_id", value=f"t{ts}")
        r = await client.post("/api/v1/write", headers=HEADERS,
                              content=bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
        assert r.status_code == 204, r.text

    for run, stamps in enumerate([(1, 2), (2, 1, 3)]):
        heron = Heron(config)  # type: ignore[arg-type]
        await heron.start()
        try:
            buffers = heron.metrics_writer.exemplars
            assert buffers is not None and buffers.loaded.wait(30)
            transport = httpx.ASGITransport(app=heron.app())
            async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=ADMIN) as client:
                await send(client, *stamps)
                heron.pipeline.flush()
                data = await exemplars(client, "restart_total", start=(now - 60_000) / 1000,
                                       end=(now + 60_000) / 1000)
                kept = [e["labels"]["trace_id"] for d in data for e in d["exemplars"]]
                text = (await client.get("/metrics")).text
            if run == 0:
                assert kept == ["t1", "t2"]
            else:  # t2: the newest again; t1: older; t3: newer, evicting t1 from the buffer of 2
                assert kept == ["t2", "t3"]
                for reason in ("duplicate", "out_of_order", "evicted"):
                    assert f'heron_metric_exemplars_dropped_total{{reason="{reason}"}} 1.0' in text, reason
                rows = heron.storage.execute(f"SELECT trace_id FROM `{heron.storage.database}`.metric_exemplars "
                                             "ORDER BY trace_id").column(0).to_pylist()
                assert rows == ["t1", "t2", "t3"]  # neither the duplicate nor the older one stored again
        finally:
            await heron.stop()
