"""OTLP/HTTP metrics receiver: POST /v1/metrics (protobuf or JSON, optionally gzip).

Bodies are decoded by `heron.traces.attributes.decode_otlp` (the decoder the logs/traces
receivers use) and replies share `heron.api.otlp_signals`' encoding: 200 with an
ExportMetricsServiceResponse (with `partial_success` when points were rejected, e.g.
exponential histograms or series over a limit), 400 with google.rpc.Status for a malformed
payload, 429/503 with Retry-After when Heron is busy.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from heron.api import heron_of, requires
from heron.api.otlp_signals import (
    GRPC_INVALID_ARGUMENT,
    GRPC_RESOURCE_EXHAUSTED,
    GRPC_UNAVAILABLE,
    _ok,
    status_reply,
)
from heron.exceptions import Backpressure, BadRequest, PipelineClosed
from heron.metrics.exemplars import exemplar_table
from heron.metrics.limits import limiter_of
from heron.metrics.otlp import Converted, DeltaToCumulative, convert
from heron.metrics.writer import METADATA_SCHEMA
from heron.server import Heron
from heron.traces.attributes import MAX_BODY_BYTES, TooLarge, decode_otlp


def _decode(body: bytes, ctype: str | None, encoding: str | None) -> Converted:
    return convert(decode_otlp(body, ctype, encoding, ExportMetricsServiceRequest))


def _deltas(heron: Heron) -> DeltaToCumulative:
    acc = getattr(heron, "_otlp_delta", None)
    if acc is None:
        acc = DeltaToCumulative(storage=heron.storage, flush=heron.pipeline.flush)
        heron._otlp_delta = acc  # type: ignore[attr-defined]
    return acc


@requires("ingest")
async def metrics(request: Request) -> Response:
    heron = heron_of(request)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return status_reply(request, 413, GRPC_INVALID_ARGUMENT, "request body too large")
    body = await request.body()
    try:
        conv = await asyncio.get_running_loop().run_in_executor(
            None, _decode, body, request.headers.get("content-type"), request.headers.get("content-encoding"))
    except TooLarge as exc:
        heron.metrics.ingest_rejected.labels("metrics", "too_large").inc()
        return status_reply(request, 413, GRPC_INVALID_ARGUMENT, str(exc))
    except BadRequest as exc:
        heron.metrics.ingest_rejected.labels("metrics", "bad_request").inc()
        return status_reply(request, 400, GRPC_INVALID_ARGUMENT, str(exc))
    response = ExportMetricsServiceResponse()
    rejected, errors = conv.rejected, list(conv.errors)
    if conv.series:
        # In a thread: the first delta of a series may read its last total from storage.
        values = await asyncio.get_running_loop().run_in_executor(None, _deltas(heron).apply, conv)
        extra = {}
        if conv.metadata:
            rows = [(name, *meta) for name, meta in conv.metadata.items()]
            cols = list(zip(*rows, strict=True))
            extra["metric_metadata"] = pa.table([pa.array(c, pa.string()) for c in cols],
                                                schema=METADATA_SCHEMA)
        if conv.exemplars:
            ex_rows = [(conv.series[i], labels, ts, v) for i, labels, ts, v in conv.exemplars]
            extra["metric_exemplars"] = exemplar_table(ex_rows, [heron.series_index.id_of(r[0]) for r in ex_rows])
        limiter_of(heron)
        try:
            written, limited = await heron.metrics_writer.write_limited(
                conv.series, np.ones(len(conv.series), dtype=np.int64), np.asarray(conv.ts, dtype=np.int64),
                values, extra=extra)
        except Backpressure as exc:
            return status_reply(request, 429, GRPC_RESOURCE_EXHAUSTED, str(exc),
                                headers={"Retry-After": str(exc.retry_after)})
        except PipelineClosed as exc:
            return status_reply(request, 503, GRPC_UNAVAILABLE, str(exc), headers={"Retry-After": "5"})
        if limited:
            rejected += len(conv.series) - written
            errors.append(limited)
    if rejected:
        if conv.rejected:
            heron.metrics.ingest_rejected.labels("metrics", "otlp_unsupported").inc(conv.rejected)
        response.partial_success.rejected_data_points = rejected
        response.partial_success.error_message = "; ".join(errors)[:4000]
    return _ok(request, response)


def routes(heron: Heron) -> list[BaseRoute]:
    return [Route("/v1/metrics", metrics, methods=["POST"])]
