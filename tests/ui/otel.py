"""Logs and traces for the UI tests, sent by the real OpenTelemetry Python SDK over OTLP/HTTP."""

from __future__ import annotations

import logging
import time

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode


def send(otlp_url: str, headers: dict[str, str], hostile: str) -> dict[str, str]:
    """A checkout trace (root, DB child, failing payment call with an event) and its logs, one
    of them hostile; a second, fast trace from another service. Returns the checkout trace id."""
    resource = Resource.create({"service.name": "checkout", "deployment.environment": "prod"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_url + "/v1/traces",
                                                                            headers=headers)))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=otlp_url + "/v1/logs",
                                                                                      headers=headers)))
    log = logging.getLogger("heron.ui.test.checkout")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider)
    log.addHandler(handler)
    tracer = tracer_provider.get_tracer("shop")
    payments = TracerProvider(resource=Resource.create({"service.name": "payments"}))
    payments.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_url + "/v1/traces", headers=headers)))
    try:
        with tracer.start_as_current_span("POST /orders", attributes={"http.route": "/orders", "user": hostile}) as root:
            log.info("order received id=42")
            with tracer.start_as_current_span("SELECT orders", attributes={"db.system": "postgresql"}):
                time.sleep(0.02)
            with tracer.start_as_current_span("charge card") as pay:
                time.sleep(0.01)
                # the downstream service, as if called over HTTP with the trace context propagated
                with payments.get_tracer("payments").start_as_current_span("POST /charge", attributes={"amount": 42}):
                    time.sleep(0.02)
                pay.add_event("retry", {"attempt": 2})
                pay.set_status(Status(StatusCode.ERROR, "card declined"))
                log.error("payment failed: %s", hostile)
            log.warning("slow checkout took 1200ms")
            trace_id = format(root.get_span_context().trace_id, "032x")
        other = TracerProvider(resource=Resource.create({"service.name": "auth"}))
        other.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_url + "/v1/traces", headers=headers)))
        with other.get_tracer("auth").start_as_current_span("GET /session"):
            pass
        other.shutdown()
    finally:
        log.removeHandler(handler)
        tracer_provider.shutdown()
        payments.shutdown()
        logger_provider.shutdown()
    return {"trace_id": trace_id}
