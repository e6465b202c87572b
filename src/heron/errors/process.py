"""Behind the queue: raw envelopes become rows, issue counts and alerts, one batch at a time.

    queue batch (records a..b) ─▶ decompress, parse, normalize, scrub, group each envelope
        ─▶ drop events whose id was counted before (SDK resends, a replayed batch)
        ─▶ insert rows, token "<queue token>/<table>"  (a replayed batch re-inserts nothing)
        ─▶ ONE control-store transaction: issue counters, seen event ids, user reports, and the
           watermark "counted through b" (a replayed batch counts nothing twice)
        ─▶ check-ins, alerts

Processing is deterministic for a given record (the receive time, client IP and fallback
event id travel in the record), so a batch replayed after `kill -9` yields the same rows and
finds its events already counted. A record that turns out to be malformed here (bad JSON in
an item) is logged and counted in `heron_errors_items_total{outcome="invalid"}`; it never
blocks the batch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from heron.errors import rows
from heron.errors.envelope import Envelope, Item, decompress, parse_envelope, parse_store_body
from heron.errors.grouping import group
from heron.errors.normalize import clamp_ts, normalize, user_key
from heron.errors.projects import Project
from heron.exceptions import BadRequest

if TYPE_CHECKING:
    from heron.errors.ingest import ErrorTracking

log = logging.getLogger("heron.errors.process")
EVENT_TYPES = {"event", "transaction"}
KNOWN = {"event", "transaction", "check_in", "session", "sessions", "client_report", "attachment",
         "user_report", "feedback", "statsd", "metric_buckets", "profile", "replay_event",
         "replay_recording", "replay_video", "span", "otel_log", "log", "profile_chunk", "nel"}


@dataclass
class Parsed:
    """Everything one envelope carries, normalized."""
    project: Project
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[tuple[str, float, dict[str, Any], bytes]] = field(default_factory=list)
    sessions: list[tuple[float, str, str, str, int, str]] = field(default_factory=list)
    check_ins: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)


class Processor:
    """What the envelope queue flushes into: it looks like a `Storage` to the queue's pipeline
    (its `insert` gets each batch with a replay-stable token) and does the processing."""

    database = ""

    def __init__(self, et: ErrorTracking) -> None:
        self.et = et

    # -- the Storage surface the pipeline uses ---------------------------------------------
    def insert(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        self.process(data, dedup_token or "")

    def execute(self, sql: str, params: Any = None, settings: Any = None) -> pa.Table:
        raise NotImplementedError("the envelope processor only takes inserts")

    def command(self, sql: str, params: Any = None) -> None:
        raise NotImplementedError("the envelope processor only takes inserts")

    def close(self) -> None:
        pass

    # -- processing --------------------------------------------------------------------------
    def process(self, data: pa.Table, token: str) -> None:
        et = self.et
        t0 = time.perf_counter()
        projects: dict[int, Project | None] = {}
        parsed: list[Parsed] = []
        cols = {name: data.column(name).to_pylist() for name in data.column_names}
        for i in range(data.num_rows):
            pid = cols["project"][i]
            if pid not in projects:
                projects[pid] = et.projects.get(pid)
            project = projects[pid]
            if project is None:  # deleted since it was accepted
                et.items.labels("envelope", "invalid").inc()
                continue
            try:
                parsed.append(self.parse(project, cols["kind"][i], cols["body"][i], cols["encoding"][i],
                                         cols["ip"][i], cols["received"][i], cols["event_id"][i]))
            except BadRequest as exc:
                et.items.labels("envelope", "invalid").inc()
                log.warning("project %s: envelope dropped after acceptance: %s", pid, exc)
            except Exception:  # a bug must not wedge the queue: log it, keep the rest of the batch
                et.items.labels("envelope", "invalid").inc()
                log.exception("project %s: envelope processing failed", pid)
        t1 = time.perf_counter()
        # Drop resent events (same id), within the batch and against what was counted before.
        ids = [ev["event_id"] for p in parsed for _, ev in p.events]
        seen = et.issues.seen(ids)
        for p in parsed:
            keep = []
            for iid, ev in p.events:
                if ev["event_id"] in seen:
                    et.items.labels("event", "duplicate").inc()
                    continue
                seen.add(ev["event_id"])
                keep.append((iid, ev))
            p.events = keep
        tables = self.tables(parsed)
        for name, table in tables.items():
            et.heron.storage.insert(name, table, f"{token}/{name}")
        t2 = time.perf_counter()
        batches = [(p.project.id, p.events) for p in parsed if p.events]
        reports = [(p.project.id, r) for p in parsed for r in p.reports]
        results = et.issues.record_batch(token, batches, reports)
        t3 = time.perf_counter()
        if results is None:  # a replayed batch that was counted before the crash
            log.info("queue batch %s was counted before; rows re-inserted idempotently", token)
            return
        for p in parsed:
            for ci, received in p.check_ins:
                try:
                    et.crons.check_in(p.project.id, p.project.slug, ci, received)
                except BadRequest as exc:
                    et.items.labels("check_in", "invalid").inc()
                    log.warning("project %s: check-in dropped: %s", p.project.slug, exc)
        changes = iter(results)
        for p in parsed:
            if p.events:
                ch = next(changes)
                if ch or et.settings.spikes:
                    et.alert(p.project, p.events, ch)
        n = sum(len(p.events) for p in parsed)
        et.processed.inc(n)
        et.stage_seconds.labels("parse").inc(t1 - t0)
        et.stage_seconds.labels("store").inc(t2 - t1)
        et.stage_seconds.labels("count").inc(t3 - t2)

    def tables(self, parsed: list[Parsed]) -> dict[str, pa.Table]:
        out: dict[str, list[pa.Table]] = {}
        for p in parsed:
            pid = p.project.id
            if p.events:
                out.setdefault("error_events", []).append(rows.event_rows(pid, p.events))
            if p.transactions:
                cols = self.et.span_columns()
                if cols:
                    out.setdefault("spans", []).append(rows.span_rows(p.project.slug, p.transactions, cols))
            if p.attachments:
                out.setdefault("error_attachments", []).append(rows.attachment_rows(pid, p.attachments))
            if p.sessions:
                out.setdefault("error_sessions", []).append(rows.session_rows(pid, p.sessions))
        return {k: pa.concat_tables(v) if len(v) > 1 else v[0] for k, v in out.items()}

    def parse(self, project: Project, kind: str, body: bytes, encoding: str | None, ip: str | None,
              received: float, event_id: str | None) -> Parsed:
        data = decompress(body, encoding or None)
        if kind == "store":
            raw = parse_store_body(data)
            env = Envelope({}, [Item("transaction" if raw.get("type") == "transaction" else "event", {}, b"")])
            return self.items(project, env, ip or None, received, event_id, preparsed=raw)
        return self.items(project, parse_envelope(data), ip or None, received, event_id)

    def items(self, project: Project, env: Envelope, ip: str | None, received: float,
              event_id: str | None, preparsed: dict[str, Any] | None = None) -> Parsed:
        et = self.et
        out = Parsed(project)
        fallback_id = env.headers.get("event_id") or event_id
        for it in env.items:
            kind = it.type
            outcome = "accepted"
            try:
                if kind in EVENT_TYPES:
                    raw = preparsed if preparsed is not None else it.json()
                    if not isinstance(raw, dict):
                        raise BadRequest(f"{kind} item: payload must be a JSON object")
                    if fallback_id and "event_id" not in raw:
                        # the id the request was answered with; later items get their own
                        raw, fallback_id = {**raw, "event_id": fallback_id}, None
                    ev = normalize(raw, received, ip, kind)
                    et.settings.scrubber.event(ev)
                    if ev.get("type") == "transaction":
                        out.transactions.append(ev)
                    else:
                        ev["_user_key"] = user_key(ev.get("user"))
                        out.events.append((group(project.id, ev), ev))
                elif kind == "attachment":
                    if len(it.payload) > et.settings.attachments_max_bytes:
                        outcome = "too_large"
                    else:
                        eid = str(env.headers.get("event_id") or it.headers.get("event_id") or "")
                        out.attachments.append((eid, received, it.headers, it.payload))
                elif kind == "check_in":
                    payload = it.json()
                    if not isinstance(payload, dict):
                        raise BadRequest("check_in item: payload must be a JSON object")
                    out.check_ins.append((payload, received))
                elif kind in ("session", "sessions"):
                    sessions(it, received, out)
                elif kind == "client_report":
                    self.client_report(it)
                elif kind in ("user_report", "feedback"):
                    rep = it.json()
                    if isinstance(rep, dict):
                        out.reports.append(user_report(kind, rep))
                else:
                    outcome = "skipped"
            except BadRequest as exc:
                # one bad item does not take the envelope's other items with it
                outcome = "invalid"
                log.warning("project %s: %s item dropped: %s", project.slug, kind, exc)
            et.items.labels(kind if kind in KNOWN else "unknown", outcome).inc()
        return out

    def client_report(self, it: Item) -> None:
        rep = it.json()
        for d in (rep.get("discarded_events") or []) if isinstance(rep, dict) else []:
            if isinstance(d, dict) and isinstance(d.get("quantity"), int) and d["quantity"] > 0:
                self.et.discarded.labels(str(d.get("reason", ""))[:64],
                                         str(d.get("category", ""))[:64]).inc(d["quantity"])


def user_report(kind: str, rep: dict[str, Any]) -> dict[str, Any]:
    if kind == "feedback":
        ctx: dict[str, Any] = rep["contexts"] if isinstance(rep.get("contexts"), dict) else {}
        fb: dict[str, Any] = ctx["feedback"] if isinstance(ctx.get("feedback"), dict) else {}
        return {"event_id": fb.get("associated_event_id") or rep.get("event_id"),
                "name": fb.get("name"), "email": fb.get("contact_email"), "comments": fb.get("message")}
    return rep


def sessions(it: Item, received: float, out: Parsed) -> None:
    data = it.json()
    if not isinstance(data, dict):
        raise BadRequest(f"{it.type} item: payload must be a JSON object")
    attrs: dict[str, Any] = data["attrs"] if isinstance(data.get("attrs"), dict) else {}
    release, env = str(attrs.get("release") or "")[:250], str(attrs.get("environment") or "")[:64]
    if it.type == "session":
        out.sessions.append((clamp_ts(data.get("started"), received), release, env,
                             str(data.get("status") or "ok")[:32], 1, str(data.get("did") or "")[:128]))
        return
    for agg in data.get("aggregates") or []:
        if not isinstance(agg, dict):
            continue
        ts = clamp_ts(agg.get("started"), received)
        for status in ("exited", "errored", "abnormal", "crashed"):
            n = agg.get(status)
            if isinstance(n, int) and n > 0:
                out.sessions.append((ts, release, env, status, min(n, 2**31), str(agg.get("did") or "")[:128]))

