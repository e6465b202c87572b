"""Prometheus remote write receiver: POST /api/v1/write (protocols 1.0 and 2.0, snappy protobuf).

The message is chosen by Content-Type (`application/x-protobuf;proto=io.prometheus.write.v2.Request`
for 2.0, 1.0 otherwise); an unknown `proto` gets 415. 2.0 replies carry the
`X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` headers.

Replies as Prometheus' own receiver does: 204 when durable, 400 with a message for a payload
that will never succeed (the sender drops it), 429/503 with Retry-After when Heron is busy
(the sender retries). Samples are stored as sent; out-of-order and duplicate samples are kept
(ClickHouse orders them; queries read the last value per timestamp).
"""

from __future__ import annotations

import pyarrow as pa
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from heron.api import backpressure, heron_of, requires
from heron.exceptions import Backpressure, BadRequest, PipelineClosed
from heron.metrics import remote_write_pool
from heron.metrics.exemplars import exemplar_table
from heron.metrics.limits import limiter_of
from heron.metrics.remote_write_pool import decode_async
from heron.metrics.remote_write_v2 import PROTO_V2, proto_of
from heron.metrics.writer import METADATA_SCHEMA
from heron.server import Heron


@requires("ingest")
async def write(request: Request) -> Response:
    heron = heron_of(request)
    try:
        proto = proto_of(request.headers.get("content-type"))
    except BadRequest as exc:
        return PlainTextResponse(f"{exc}\n", 415)
    body = await request.body()
    try:
        decoded = await decode_async(body, request.headers.get("content-encoding", "snappy"), proto)
    except BadRequest as exc:
        heron.metrics.ingest_rejected.labels("metrics", "bad_request").inc()
        return PlainTextResponse(f"{exc}\n", 400)
    extra = {}
    if decoded.metadata:
        cols = list(zip(*decoded.metadata, strict=True))
        extra["metric_metadata"] = pa.table([pa.array(c, pa.string()) for c in cols],
                                            schema=METADATA_SCHEMA)
    if decoded.exemplars:
        rows = [(decoded.series[i], labels, ts, value) for i, labels, ts, value in decoded.exemplars]
        ids = ([int(decoded.ids[i]) for i, *_ in decoded.exemplars] if decoded.ids is not None
               else [heron.series_index.id_of(r[0]) for r in rows])
        extra["metric_exemplars"] = exemplar_table(rows, ids)
    limiter_of(heron)
    try:
        written, refused = await heron.metrics_writer.write_limited(
            decoded.series, decoded.counts, decoded.ts, decoded.values, extra=extra, ids=decoded.ids,
            flat=decoded.flat)
    except Backpressure as exc:
        return backpressure(exc.retry_after, str(exc))
    except PipelineClosed as exc:
        return PlainTextResponse(f"{exc}\n", 503, headers={"Retry-After": "5"})
    headers = {}
    if proto == PROTO_V2:
        headers = {"X-Prometheus-Remote-Write-Samples-Written": str(written),
                   "X-Prometheus-Remote-Write-Histograms-Written": "0",
                   "X-Prometheus-Remote-Write-Exemplars-Written": str(len(decoded.exemplars))}
    if refused:
        # As Mimir does: the rest of the request is stored; 400 tells the sender not to retry.
        return PlainTextResponse(f"{refused}\n", 400, headers=headers)
    return Response(status_code=204, headers=headers)


def routes(heron: Heron) -> list[BaseRoute]:
    remote_write_pool.start()
    return [Route("/api/v1/write", write, methods=["POST"])]
