"""Remote write receiver: protocol errors, metadata, limits, and the real Prometheus as sender."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import cramjam
import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from heron.exceptions import BadRequest
from heron.metrics.model import STALE_NAN_BITS
from heron.metrics.proto import remote_pb2
from heron.server import Heron
from tests.conftest import ADMIN, make_config
from tests.metrics import peers
from tests.metrics.helpers import Served, instant, samples, serve_wsgi
from tests.metrics.test_scrape import SwappableApp, wait_for

HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}


def write_request(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bytes:
    req = remote_pb2.WriteRequest()
    for labels, points in series:
        ts = req.timeseries.add()
        for k, v in sorted(labels.items()):
            ts.labels.add(name=k, value=v)
        for t, v in points:
            ts.samples.add(timestamp=t, value=v)
    md = req.metadata.add()
    md.metric_family_name, md.type, md.help = "rw_requests_total", 1, "Requests."
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


async def test_write_and_read_back(heron: Heron, client: httpx.AsyncClient) -> None:
    now = int(time.time() * 1000)
    body = write_request([({"__name__": "rw_requests_total", "path": "/"}, [(now, 1.0), (now + 1000, 2.0)]),
                          ({"__name__": "rw_temp", "room": "a"}, [(now, -3.5)])])
    r = await client.post("/api/v1/write", content=body, headers=HEADERS)
    assert r.status_code == 204, r.text
    rows = await samples(heron)
    assert [(r["metric"], r["ts"] - now, r["value"]) for r in rows] == [
        ("rw_requests_total", 0, 1.0), ("rw_temp", 0, -3.5), ("rw_requests_total", 1000, 2.0)]
    meta = (await asyncio.to_thread(heron.storage.execute,
            f"SELECT type, help FROM `{heron.storage.database}`.metric_metadata FINAL")).to_pylist()
    assert meta == [{"type": "counter", "help": "Requests."}]


@pytest.mark.parametrize("body, headers, message", [
    (b"not snappy at all \xff", HEADERS, "snappy"),
    (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff\xff")), HEADERS, "protobuf"),
    (write_request([({"job": "x"}, [(1, 1.0)])]), HEADERS, "missing __name__"),
    (b"x", {**HEADERS, "Content-Encoding": "zstd"}, "Content-Encoding"),
])
async def test_malformed_requests_get_400_with_a_message(client: httpx.AsyncClient, body: bytes,
                                                         headers: dict[str, str], message: str) -> None:
    r = await client.post("/api/v1/write", content=body, headers=headers)
    assert r.status_code == 400 and message in r.text


async def test_series_limits_refuse_with_message_and_count(tmp_path: Path) -> None:
    config = make_config(tmp_path, limits={"metrics": {"max_series_per_metric": 2,  # type: ignore[arg-type]
                                                       "max_label_value_length": 20}}, self_scrape=False)
    heron = Heron(config)  # type: ignore[arg-type]
    await heron.start()
    try:
        transport = httpx.ASGITransport(app=heron.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=ADMIN) as client:
            now = int(time.time() * 1000)
            series = [({"__name__": "m", "i": str(i)}, [(now, float(i))]) for i in range(4)]
            series.append(({"__name__": "other", "v": "x" * 30}, [(now, 1.0)]))
            r = await client.post("/api/v1/write", content=write_request(series), headers=HEADERS)
            assert r.status_code == 400
            assert "per-metric series limit 2 reached for m" in r.text
            assert "longer than max_label_value_length 20" in r.text
            rows = await samples(heron)
            assert sorted(r["labels"]["i"] for r in rows) == ["0", "1"]
            # Known series keep flowing; the refusals are counted by reason.
            r = await client.post("/api/v1/write", content=write_request(series[:2]), headers=HEADERS)
            assert r.status_code == 204
            text = (await client.get("/metrics")).text
            assert 'heron_ingest_rejected_rows_total{reason="per_metric_series_limit",signal="metrics"} 2.0' in text
            assert 'heron_ingest_rejected_rows_total{reason="label_value_length",signal="metrics"} 1.0' in text
    finally:
        await heron.stop()


@pytest.mark.peer
@pytest.mark.skipif(not peers.have(peers.PROMETHEUS), reason="prometheus binary not installed")
async def test_real_prometheus_remote_writes_values_resets_and_staleness(heron: Heron) -> None:
    reg = CollectorRegistry()
    c = Counter("peer_jobs", "Jobs.", registry=reg)
    c.inc(10)
    Gauge("peer_temp", "Temp.", ["room"], registry=reg).labels("a").set(21.5)
    app = SwappableApp(reg)
    with serve_wsgi(app) as target:
        async with Served(heron) as srv:
            config: dict[str, Any] = {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": [target]}]}],
                "remote_write": [{"url": f"{srv.url}/api/v1/write",
                                  "authorization": {"credentials": ADMIN["Authorization"].split()[1]},
                                  "queue_config": {"batch_send_deadline": "500ms"},
                                  "metadata_config": {"send_interval": "1s"}}],
            }
            with peers.prometheus(config):
                async def values() -> Any:
                    rows = [r for r in await samples(heron) if r["metric"] == "peer_jobs_total"]
                    return rows if len(rows) >= 2 else None
                rows = await wait_for(values, timeout=30)
                assert rows[0]["labels"] == {"__name__": "peer_jobs_total", "job": "app", "instance": target}
                assert rows[-1]["value"] == 10.0
                # Counter reset and a series that disappears (Prometheus sends the stale marker).
                reg2 = CollectorRegistry()
                Counter("peer_jobs", "Jobs.", registry=reg2).inc(2)
                app.registry = reg2

                async def reset_and_stale() -> Any:
                    rows = await samples(heron)
                    jobs = [r["value"] for r in rows if r["metric"] == "peer_jobs_total"]
                    temp = [r for r in rows if r["metric"] == "peer_temp"]
                    return rows if jobs[-1] == 2.0 and temp[-1]["bits"] == STALE_NAN_BITS else None
                rows = await wait_for(reset_and_stale, timeout=30)
                assert next(r for r in rows if r["metric"] == "peer_temp")["value"] == 21.5
                assert any(r["metric"] == "up" and r["labels"]["job"] == "app" for r in rows)

                async def metadata() -> Any:
                    return (await asyncio.to_thread(
                        heron.storage.execute,
                        f"SELECT metric, type, help FROM `{heron.storage.database}`.metric_metadata FINAL "
                        "WHERE metric LIKE 'peer_jobs%'")).to_pylist()
                meta = await wait_for(metadata, timeout=15)
                assert meta[0]["type"] == "counter" and meta[0]["help"] == "Jobs."
                # End to end through the query API: the latest value after the reset.
                [res] = await instant(heron, 'peer_jobs_total{job="app"}')
                assert res["metric"] == {"__name__": "peer_jobs_total", "job": "app", "instance": target}
                assert float(res["value"][1]) == 2.0


def test_fast_decoder_equals_protobuf_decoder() -> None:
    """The wire-walking decoder against protobuf's, on zeros, stale NaN, negative timestamps,
    several samples per series, empty label values, histograms and metadata."""
    import math

    import numpy as np

    from heron.metrics import remote_write as rw
    from heron.metrics.model import STALE_NAN

    req = remote_pb2.WriteRequest()
    for i in range(500):
        t = req.timeseries.add()
        for k, v in (("job", "j"), ("__name__", f"m{i % 7}"), ("i", str(i)), ("empty", ""), ("u", "héllo✓")):
            t.labels.add(name=k, value=v)
        for j in range(i % 4):
            value = [float(i), 0.0, STALE_NAN, -1.5e300, math.inf][(i + j) % 5]
            t.samples.add(timestamp=1_700_000_000_000 + j * 1000 - (i % 3) * 10**13, value=value)
        if i % 50 == 0:
            t.histograms.add().sum = 1.0
    req.metadata.add(metric_family_name="m0", type=2, help="h")
    raw = req.SerializeToString()
    fast, ref = rw._decode_fast(raw, rw.LabelsCache()), rw._decode_protobuf(raw)
    assert fast.series == ref.series and fast.counts.tolist() == ref.counts.tolist()
    assert fast.ts.tolist() == ref.ts.tolist()
    assert fast.values.view(np.uint64).tolist() == ref.values.view(np.uint64).tolist()
    assert fast.metadata == ref.metadata == [("m0", "gauge", "h", "")]
    assert fast.histograms_dropped == ref.histograms_dropped == 10
    # A sample with timestamp 0 (field omitted) takes the protobuf path and still decodes.
    req.timeseries[1].samples.add(timestamp=0, value=5.0)
    body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
    out = rw.decode_write_request(body)
    assert 0 in out.ts.tolist() and out.counts[1] == ref.counts[1] + 1


async def test_remote_write_2_0(heron: Heron, client: httpx.AsyncClient) -> None:
    from heron.metrics.proto import write_v2_pb2

    now = int(time.time() * 1000)
    req = write_v2_pb2.Request(symbols=["", "__name__", "v2_requests_total", "path", "/a", "Requests.", "b"])
    t = req.timeseries.add(labels_refs=[1, 2, 3, 4])
    t.samples.add(value=3.0, timestamp=now)
    t.samples.add(value=4.0, timestamp=now + 1000)
    t.metadata.type, t.metadata.help_ref = write_v2_pb2.Metadata.METRIC_TYPE_COUNTER, 5
    t.histograms.add(sum=1.0, timestamp=now)
    headers = {**HEADERS, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
               "X-Prometheus-Remote-Write-Version": "2.0.0"}
    body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
    r = await client.post("/api/v1/write", content=body, headers=headers)
    assert r.status_code == 204, r.text
    assert r.headers["X-Prometheus-Remote-Write-Samples-Written"] == "2"
    assert r.headers["X-Prometheus-Remote-Write-Histograms-Written"] == "0"
    rows = await samples(heron)
    assert [(r["labels"], r["value"]) for r in rows] == [
        ({"__name__": "v2_requests_total", "path": "/a"}, 3.0), ({"__name__": "v2_requests_total", "path": "/a"}, 4.0)]
    meta = (await asyncio.to_thread(heron.storage.execute,
            f"SELECT metric, type, help FROM `{heron.storage.database}`.metric_metadata FINAL")).to_pylist()
    assert meta == [{"metric": "v2_requests_total", "type": "counter", "help": "Requests."}]

    bad = write_v2_pb2.Request(symbols=["", "__name__", "x"])
    bad.timeseries.add(labels_refs=[1, 9]).samples.add(value=1, timestamp=now)
    r = await client.post("/api/v1/write", content=bytes(cramjam.snappy.compress_raw(bad.SerializeToString())),
                          headers=headers)
    assert r.status_code == 400 and "past the symbols table" in r.text
    r = await client.post("/api/v1/write", content=body,
                          headers={**headers, "Content-Type": "application/x-protobuf;proto=foo.Bar"})
    assert r.status_code == 415 and "foo.Bar" in r.text


def test_vectorized_label_decoder_equals_protobuf_and_model_series_id() -> None:
    """New series' labels walked as arrays: same label sets as protobuf, ids equal to
    model.series_id; long labels (two-byte varints), empty values, UTF-8, and layouts it
    does not handle (unsorted, >16 KiB, missing __name__, bad UTF-8) take the per-series path."""
    import numpy as np

    from heron.metrics import remote_write as rw
    from heron.metrics.model import series_id

    def request(series: list[list[tuple[str, str]]]) -> bytes:
        req = remote_pb2.WriteRequest()
        for i, labels in enumerate(series):
            t = req.timeseries.add()
            for k, v in labels:
                t.labels.add(name=k, value=v)
            t.samples.add(timestamp=1_700_000_000_000 + i, value=float(i))
        return req.SerializeToString()

    series = [[("__name__", f"m{i % 3}"), ("empty", ""), ("i", str(i)), ("long", "x" * (100 + i * 7)),
               ("u", "héllo✓" * (i % 4))] for i in range(40)]
    raw = request(series)
    fast, ref = rw._decode_fast(raw, rw.LabelsCache()), rw._decode_protobuf(raw)
    assert fast.new_ids is not None and fast.series == ref.series == fast.new_series
    assert fast.new_ids.tolist() == [series_id(s) for s in ref.series]
    assert fast.ts.tolist() == ref.ts.tolist()
    # Unusual layouts: still decoded (or refused) exactly as the protobuf path does.
    unsorted = [[("job", "j"), ("__name__", f"m{i}")] for i in range(20)]
    huge = [[("__name__", "m"), ("big", "y" * 20_000), ("i", str(i))] for i in range(20)]
    for layout in (unsorted, huge):
        raw = request(layout)
        fast = rw._decode_fast(raw, rw.LabelsCache())
        assert fast.new_ids is None and fast.series == rw._decode_protobuf(raw).series
    with pytest.raises(BadRequest, match="timeseries 7: missing __name__"):
        rw._decode_fast(request([[("__name__", "m"), ("i", str(i))] if i != 7 else [("i", "7")]
                                 for i in range(20)]), rw.LabelsCache())
    bad = bytearray(request([[("__name__", "m"), ("i", f"v{i}")] for i in range(20)]))
    bad[bad.index(b"v5") + 1] = 0xFF  # invalid UTF-8 in one value
    with pytest.raises(BadRequest, match="protobuf"):
        rw._decode_fast(bytes(bad), rw.LabelsCache())
    assert np.asarray(fast.counts).sum() == 20
    # One long series among short ones (its fields finish in the scalar loop), and a series whose
    # sample precedes its labels (legal protobuf, decoded by the protobuf path).
    req = remote_pb2.WriteRequest.FromString(request(series))
    for j in range(300):
        req.timeseries[3].samples.add(timestamp=1_800_000_000_000 + j, value=j / 7)
    raw = req.SerializeToString()
    fast, ref = rw._decode_fast(raw, rw.LabelsCache()), rw._decode_protobuf(raw)
    assert fast.counts.tolist() == ref.counts.tolist() and fast.counts[3] == 301
    assert fast.ts.tolist() == ref.ts.tolist() and fast.values.tolist() == ref.values.tolist()
    sample = remote_pb2.Sample(value=1.0, timestamp=5).SerializeToString()
    labels = b"".join(b"\x0a" + bytes([len(m)]) + m for m in (
        remote_pb2.Label(name="__name__", value="x").SerializeToString(),))
    ts_body = b"\x12" + bytes([len(sample)]) + sample + labels
    raw = b"\x0a" + bytes([len(ts_body)]) + ts_body
    out = rw.decode_write_request(raw, "identity")
    assert out.series == [(("__name__", "x"),)] and out.ts.tolist() == [5]


async def test_decoding_in_a_worker_process(heron: Heron, client: httpx.AsyncClient,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """HERON_DECODE_WORKERS=1: large requests decode in a spawned process; values and the
    400 message for a malformed body are the same as in-process."""
    import hashlib
    import random

    from heron.metrics import remote_write_pool

    monkeypatch.setenv("HERON_DECODE_WORKERS", "1")
    now = int(time.time() * 1000)
    series = [({"__name__": "pool_metric", "i": str(i), "pad": hashlib.sha256(str(i).encode()).hexdigest()},
               [(now, float(i))]) for i in range(600)]
    body = write_request(series)
    assert len(body) >= remote_write_pool.MIN_BODY
    try:
        r = await client.post("/api/v1/write", content=body, headers=HEADERS)
        assert r.status_code == 204, r.text
        rows = [r for r in await samples(heron) if r["metric"] == "pool_metric"]
        assert sorted(r["value"] for r in rows) == [float(i) for i in range(600)]
        noise = random.Random(1).randbytes(20_000)  # incompressible: large enough for the worker
        bad = bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff\x0f" + noise))
        assert len(bad) >= remote_write_pool.MIN_BODY
        r = await client.post("/api/v1/write", content=bad, headers=HEADERS)
        assert r.status_code == 400 and "protobuf" in r.text
        assert remote_write_pool._pool is not None  # the worker answered both
    finally:
        remote_write_pool.shutdown()


def test_label_sets_of_many_shapes_equal_protobuf() -> None:
    """New series with different label names in one request (a few interleaved shapes, and more
    shapes than the per-shape path takes) decode to the same label sets and ids as protobuf."""
    from heron.metrics import remote_write as rw
    from heron.metrics import remote_write_labels as rl
    from heron.metrics.model import series_id

    def request(series: list[list[tuple[str, str]]]) -> bytes:
        req = remote_pb2.WriteRequest()
        for i, labels in enumerate(series):
            t = req.timeseries.add()
            for k, v in labels:
                t.labels.add(name=k, value=v)
            t.samples.add(timestamp=1_700_000_000_000 + i, value=float(i))
        return req.SerializeToString()

    few = [[("__name__", f"m{i % 3}"), (("a", "b", "c")[i % 3], str(i)), ("z", "é" * (i % 2))] for i in range(60)]
    many = [[("__name__", "m"), (f"l{i:02d}", str(i)), ("z", "1")] for i in range(rl.MAX_SHAPES + 8)]
    for layout in (few, many, few[:1] * 20):
        raw = request(layout)
        fast, ref = rw._decode_fast(raw, rw.LabelsCache()), rw._decode_protobuf(raw)
        assert fast.new_ids is not None and fast.series == ref.series
        assert fast.ids is not None and fast.ids.tolist() == [series_id(s) for s in ref.series]
        assert all(type(s) is tuple and all(type(p) is tuple for p in s) for s in fast.series)


def test_remote_write_2_wire_decoder_equals_protobuf() -> None:
    """2.0 decoded on the wire: the same series, ids, samples, metadata, exemplars and
    histogram count as the protobuf path; a repeat comes from the label cache; layouts and
    errors it leaves to protobuf still decode (or fail) exactly as before."""
    import math

    import numpy as np

    from heron.metrics import remote_write_v2 as v2
    from heron.metrics import remote_write_v2_wire as wire
    from heron.metrics.model import STALE_NAN, series_id
    from heron.metrics.proto import write_v2_pb2
    from heron.metrics.remote_write import LabelsCache

    def request(n: int, unsorted: bool = False) -> bytes:
        symbols = [""]

        def ref(s: str) -> int:
            if s not in symbols:
                symbols.append(s)
            return symbols.index(s)

        req = write_v2_pb2.Request()
        for i in range(n):
            labels = [("__name__", f"m{i % 3}"), ("empty", ""), ("i", str(i)), ("u", "héllo✓" * (i % 3))]
            if unsorted and i == 5:
                labels.reverse()
            t = req.timeseries.add(labels_refs=[r for k, v in labels for r in (ref(k), ref(v))])
            for j in range(i % 4):
                value = [float(i), 0.0, STALE_NAN, -1.5e300, math.inf][(i + j) % 5]
                t.samples.add(timestamp=1_700_000_000_000 + j * 1000 - (i % 3) * 10**13, value=value)
            if i % 7 == 0:
                t.histograms.add(sum=1.0, timestamp=5)
            if i % 11 == 0:
                t.exemplars.add(labels_refs=[ref("trace_id"), ref(f"t{i}")], value=0.5, timestamp=7)
            if i == 3:
                t.metadata.type, t.metadata.help_ref, t.metadata.unit_ref = 1, ref("Help."), ref("seconds")
        req.symbols.extend(symbols)
        return req.SerializeToString()

    raw = request(300)
    cache = LabelsCache()
    for _ in range(2):  # new series, then every one from the cache
        fast, ref = wire.decode(raw, cache), v2.decode_v2_protobuf(raw)
        assert fast.series == ref.series and fast.counts.tolist() == ref.counts.tolist()
        assert fast.ts.tolist() == ref.ts.tolist()
        assert fast.values.view(np.uint64).tolist() == ref.values.view(np.uint64).tolist()
        assert fast.metadata == ref.metadata == [("m0", "counter", "Help.", "seconds")]
        assert fast.exemplars == ref.exemplars and len(fast.exemplars) == 28
        assert fast.histograms_dropped == ref.histograms_dropped == 43
        assert fast.ids is not None and fast.ids.tolist() == [series_id(s) for s in ref.series]
    assert fast.flat is None and len(cache) == 300  # the second pass decoded no label
    # Left to protobuf: unsorted labels (sorted there), refs past the table (its 400 message).
    raw = request(20, unsorted=True)
    with pytest.raises(wire.Fallback):
        wire.decode(raw, LabelsCache())
    assert v2.decode_v2(raw).series == v2.decode_v2_protobuf(raw).series
    bad = write_v2_pb2.Request(symbols=["", "__name__", "x"])
    bad.timeseries.add(labels_refs=[1, 9]).samples.add(value=1, timestamp=5)
    with pytest.raises(BadRequest, match="past the symbols table"):
        v2.decode_v2(bad.SerializeToString())
