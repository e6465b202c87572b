"""Logs and traces search behind the Logs and Traces pages: the LogQL-ish parser, the SQL it
runs over real rows sent by OTLP, and the API's errors."""

from __future__ import annotations

import time

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from heron.exceptions import BadRequest
from heron.server import Heron
from heron.ui.logsearch import parse
from heron.ui.tracesearch import parse_duration_ns

T0 = (time.time_ns() // 1_000_000_000 - 120) * 1_000_000_000
PB = {"Content-Type": "application/x-protobuf"}
TRACE = "5b8efff798038103d269b633813fc60c"


def test_parse_logql_ish() -> None:
    q = parse('{service="api", level=~"error|warn", k8s.pod="p-1"} |= "time\\"out" != `healthz` |~ "user=[0-9]+"')
    assert q.matchers == [("service", "=", "api"), ("level", "=~", "error|warn"), ("k8s.pod", "=", "p-1")]
    assert q.filters == [("|=", 'time"out'), ("!=", "healthz"), ("|~", "user=[0-9]+")]
    assert parse("connection reset").filters == [("|=", "connection reset")]  # plain text: substring
    assert parse("").filters == [] and parse('|= "x"').filters == [("|=", "x")]


@pytest.mark.parametrize(("text", "message"), [
    ('{service="api"', "column 15: expected }"),
    ('{service api}', "column 10: expected = != =~ !~"),
    ('{service=api}', "column 10: expected a quoted value"),
    ('{service="a"} |= ', "column 17: expected a quoted string"),
    ('{service="a"} |~ "("', "column 18: invalid regular expression"),
    ('{service="a"} ??', "column 15: unexpected"),
])
def test_parse_errors_name_the_column(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(")):
        parse(text)


def test_durations() -> None:
    assert [parse_duration_ns(v, "d") for v in ("250ms", "1.5s", "300us", "2m", "")] == [
        250_000_000, 1_500_000_000, 300_000, 120_000_000_000, None]
    with pytest.raises(BadRequest, match="min: 'fast' is not a duration"):
        parse_duration_ns("fast", "min")


def _kv(k: str, v: str) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(string_value=v))


async def _send(client: httpx.AsyncClient) -> None:
    logs = ExportLogsServiceRequest()
    for service, records in (("api", [(17, "payment failed: card_declined <b>x</b>", TRACE),
                                      (9, "GET /healthz 200", ""), (13, "slow query 1200ms", "")]),
                             ("worker", [(9, "job done user=42", "")])):
        rl = logs.resource_logs.add()
        rl.resource.attributes.append(_kv("service.name", service))
        rl.resource.attributes.append(_kv("k8s.pod", service + "-1"))
        for i, (sev, body, trace) in enumerate(records):
            rl.scope_logs.add().log_records.append(LogRecord(
                time_unix_nano=T0 + i * 1_000_000_000, severity_number=sev, body=AnyValue(string_value=body),  # type: ignore[arg-type]
                trace_id=bytes.fromhex(trace) if trace else b""))
    assert (await client.post("/v1/logs", content=logs.SerializeToString(), headers=PB)).status_code == 200
    spans = ExportTraceServiceRequest()
    rs = spans.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", "api"))
    ss = rs.scope_spans.add()
    root, child = bytes.fromhex("eee19b7ec3c1b174"), bytes.fromhex("eee19b7ec3c1b173")
    ss.spans.extend([
        Span(trace_id=bytes.fromhex(TRACE), span_id=root, name="POST /orders", start_time_unix_nano=T0,
             end_time_unix_nano=T0 + 300_000_000, status=Status(code=Status.STATUS_CODE_ERROR)),
        Span(trace_id=bytes.fromhex(TRACE), span_id=child, parent_span_id=root, name="SELECT",
             start_time_unix_nano=T0 + 10_000_000, end_time_unix_nano=T0 + 60_000_000),
        Span(trace_id=bytes.fromhex("aa" * 16), span_id=root, name="GET /healthz", start_time_unix_nano=T0 + 5,
             end_time_unix_nano=T0 + 2_000_000),
    ])
    assert (await client.post("/v1/traces", content=spans.SerializeToString(), headers=PB)).status_code == 200


async def test_log_and_trace_search(heron: Heron, client: httpx.AsyncClient) -> None:
    await _send(client)
    heron.pipeline.flush()
    rng = {"start": str(T0 / 1e9 - 60), "end": str(T0 / 1e9 + 60)}

    async def logs(**p: str) -> list[str]:
        r = await client.get("/api/heron/search/logs", params={**rng, **p})
        assert r.status_code == 200, r.text
        return [x["body"] for x in r.json()["data"]["logs"]]

    assert len(await logs()) == 4
    assert await logs(query='{service="api"} != "healthz"') == ["slow query 1200ms", "payment failed: card_declined <b>x</b>"]
    assert await logs(query='{level=~"ERROR|warn"}') == ["slow query 1200ms", "payment failed: card_declined <b>x</b>"]
    assert await logs(query="card_declined <b>") == ["payment failed: card_declined <b>x</b>"]
    assert await logs(query='{k8s.pod="worker-1"} |~ "user=[0-9]+"') == ["job done user=42"]
    assert await logs(service="api", level="info") == ["GET /healthz 200"]
    assert await logs(query=f'{{trace_id="{TRACE}"}}') == ["payment failed: card_declined <b>x</b>"]
    r = await client.get("/api/heron/search/logs", params={**rng, "query": '{service="api"'})
    assert r.status_code == 400 and r.json()["error"] == "column 15: expected }"
    body = (await client.get("/api/heron/search/logs", params=rng)).json()["data"]
    assert body["services"] == ["api", "worker"] and sum(h["n"] for h in body["histogram"]) == 4
    assert (await client.get("/api/heron/search/logs", params={"start": "yesterday"})).status_code == 400
    assert (await client.get("/api/heron/search/logs", params={"start": "10", "end": "5"})).status_code == 400

    async def traces(**p: str) -> list[dict]:
        r = await client.get("/api/heron/search/traces", params={**rng, **p})
        assert r.status_code == 200, r.text
        return r.json()["data"]["traces"]

    assert {t["root_name"] for t in await traces()} == {"POST /orders", "GET /healthz"}
    slow = await traces(min_duration="100ms")
    assert len(slow) == 1 and slow[0]["trace_id"] == TRACE and slow[0]["duration_ns"] == 300_000_000
    assert slow[0]["spans"] == 2 and slow[0]["errors"] == 1 and slow[0]["root_service"] == "api"
    assert [t["root_name"] for t in await traces(operation="SELECT")] == ["POST /orders"]  # any span matches
    assert [t["root_name"] for t in await traces(max_duration="5ms")] == ["GET /healthz"]
    assert [t["trace_id"] for t in await traces(errors="1")] == [TRACE]
    r = await client.get("/api/heron/search/traces", params={**rng, "min_duration": "soon"})
    assert r.status_code == 400 and "min_duration" in r.json()["error"]
    got = (await client.get("/api/heron/search/traces", params={**rng, "service": "api"})).json()["data"]
    assert got["operations"] == ["GET /healthz", "POST /orders", "SELECT"]
