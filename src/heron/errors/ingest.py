"""The request side of Sentry ingest: validate cheaply, acknowledge once durable.

`ErrorTracking` is the domain object the HTTP edge calls. `accept()` does only what must answer
at once — decompress and check the envelope framing (400 with the reason), count its events
for the project's rate limit (429) — then appends the raw, still compressed body to the
envelope queue (`errors.queue`) and returns the event id once that append is fsynced.
Normalizing, scrubbing, grouping, rows and issue counters run behind the queue, in batches
(`errors.process`), as Relay and Sentry do it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter, Gauge

from heron.errors.alerts import ErrorAlerts
from heron.errors.crons import Crons
from heron.errors.digest import EVENT_TYPES
from heron.errors.envelope import Envelope, decompress, first_byte, parse_envelope, parse_store_body
from heron.errors.issues import Change, IssueStore
from heron.errors.normalize import event_id, valid_event_id
from heron.errors.process import Processor
from heron.errors.projects import Project, Projects, RateLimiter, base_url
from heron.errors.queue import EnvelopeQueue
from heron.errors.settings import load
from heron.exceptions import BadRequest

if TYPE_CHECKING:
    from heron.config import HeronConfig
    from heron.server import Heron

log = logging.getLogger("heron.errors")


class RateLimited(Exception):
    def __init__(self, retry_after: int, categories: str) -> None:
        super().__init__(f"rate limited, retry after {retry_after}s")
        self.retry_after, self.categories = retry_after, categories


class ErrorTracking:
    def __init__(self, heron: Heron) -> None:
        self.heron = heron
        self.settings = load(heron.config)
        self.projects = Projects(heron.control)
        self.issues = IssueStore(heron.control)
        self.limiter = RateLimiter()
        self.alerts = ErrorAlerts(heron.alert_receivers, self.settings, base_url(heron.config))
        self.crons = Crons(heron.control, self.alerts)
        r = heron.metrics.registry
        self.items = Counter("heron_errors_items", "Envelope items received, per type and outcome.",
                             ["type", "outcome"], registry=r)
        self.discarded = Counter("heron_errors_client_discarded",
                                 "Events the SDKs report having dropped (client reports).",
                                 ["reason", "category"], registry=r)
        self.processed = Counter("heron_errors_processed_events",
                                 "Events processed behind the envelope queue (stored and counted).", registry=r)
        self.stage_seconds = Counter("heron_errors_processing_seconds",
                                     "Wall time spent processing queue batches, per stage.", ["stage"], registry=r)
        p = heron.config.pipeline
        self.processor = Processor(self, self.settings.queue_workers)
        self.queue = EnvelopeQueue(self.processor, heron.data_dir / "errors-queue",
                                   max_bytes=p.max_queue_bytes, retry_after=p.retry_after,
                                   batch=self.settings.queue_batch,
                                   flush_interval=self.settings.queue_flush_interval)
        Gauge("heron_errors_queue_envelopes", "Envelopes acknowledged and not yet processed.",
              registry=r).set_function(lambda: self.queue.backlog)
        Gauge("heron_errors_queue_bytes", "Bytes of envelopes acknowledged and not yet processed.",
              registry=r).set_function(lambda: self.queue.backlog_bytes)
        self._span_columns: set[str] | None = None
        heron.reload_hooks.append(self._reload)

    async def _reload(self, config: HeronConfig) -> None:
        self.settings = load(config)
        self.alerts.settings = self.settings
        q = self.queue.pipeline
        q.batch_rows, q.flush_interval = self.settings.queue_batch, self.settings.queue_flush_interval

    def span_columns(self) -> set[str]:
        if self._span_columns is None:
            st = self.heron.storage
            t = st.execute(f"SELECT name FROM system.columns WHERE database = '{st.database}' AND table = 'spans'")
            self._span_columns = set(t.column("name").to_pylist()) if t.num_rows else set()
        return self._span_columns

    def flush(self, timeout: float = 60.0) -> None:
        """Block until every accepted envelope is processed: rows stored, issues counted."""
        self.queue.flush(timeout)

    # ---- the request path ------------------------------------------------------------------
    def decode(self, body: bytes, encoding: str | None) -> bytes:
        """The decompressed body (BadRequest for a bad encoding or a zip bomb)."""
        return decompress(body, encoding)

    async def accept(self, project: Project, kind: str, body: bytes, encoding: str | None,
                     data: bytes, client_ip: str | None, env: Envelope | None = None) -> str | None:
        """Validate, rate-limit and durably queue one request; returns the event id to answer with.

        `data` is `body` decompressed; `env`: the envelope already parsed from it (`parse`).
        Raises BadRequest, RateLimited, Backpressure, PipelineClosed."""
        if kind == "store":
            raw = parse_store_body(data)
            n_events, eid = 1, raw.get("event_id")
        else:
            if env is None:
                env = parse_envelope(data, view=True)
            n_events, eid = 0, env.headers.get("event_id")
            for it in env.items:
                if it.type in EVENT_TYPES:
                    n_events += 1
                    # cheap shape check; anything deeper is found (and counted) behind the queue
                    if first_byte(it.payload) != b"{":
                        raise BadRequest(f"{it.type} item: payload must be a JSON object")
                    if not eid:
                        eid = _event_id(it.payload)
        wait = self.limiter.take(project.id, project.rate_limit or self.settings.rate_limit, n_events)
        if wait:
            self.items.labels("event", "rate_limited").inc(n_events)
            raise RateLimited(wait, "error;transaction;default;security")
        # The id the SDK hears back; an event without a usable one gets it (it travels in the record,
        # so a replay after a crash assigns the same id again).
        eid = event_id(eid) if n_events else valid_event_id(eid)
        await self.queue.put(project.id, kind, body, encoding, client_ip, eid)
        m = self.heron.metrics
        m.ingest_requests.labels("errors").inc()
        m.ingest_rows.labels("errors").inc(n_events)
        return eid

    def envelope_dsn(self, data: bytes) -> str | None:
        """The `dsn` of the (decompressed) envelope header: browser tunnels authenticate this way."""
        try:
            return envelope_dsn(parse_envelope(data[:data.find(b"\n") + 1 or None]))
        except BadRequest:
            return None

    def parse(self, data: bytes) -> tuple[Envelope | None, BadRequest | None, str | None]:
        """The request path's one parse of an envelope: (envelope, or the error it raises, and
        the header's `dsn`, read from the header line alone when the items are malformed)."""
        try:
            env = parse_envelope(data, view=True)
        except BadRequest as exc:
            return None, exc, self.envelope_dsn(data)
        return env, None, envelope_dsn(env)

    # ---- behind the queue ------------------------------------------------------------------
    def alert(self, project: Project, events: list[tuple[int, dict[str, Any]]], changes: list[Change]) -> None:
        out = []
        for ch in changes:
            issue = self.issues.get(ch.issue_id)
            if issue:
                out.append((ch.kind, issue, project.slug, ch.event))
        self.alerts.changes(out)
        if self.settings.spikes:
            per_issue: dict[int, tuple[int, dict[str, Any]]] = {}
            for iid, ev in events:
                n, _ = per_issue.get(iid, (0, ev))
                per_issue[iid] = (n + 1, ev)
            for iid, (n, ev) in per_issue.items():
                issue = self.issues.get(iid)
                if issue:
                    self.alerts.count(issue, project.slug, ev, n)


def envelope_dsn(env: Envelope) -> str | None:
    return str(env.headers.get("dsn") or "") or None


def _event_id(payload: bytes) -> str | None:
    """The event_id inside an item (only needed when the envelope header has none)."""
    try:
        raw = orjson.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    value = raw.get("event_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else None


def tracking(heron: Heron) -> ErrorTracking:
    """The instance's one ErrorTracking (created on first use)."""
    et = getattr(heron, "_error_tracking", None)
    if et is None:
        et = ErrorTracking(heron)
        heron._error_tracking = et  # type: ignore[attr-defined]
    return et
