"""Raw envelopes to normalized, scrubbed, grouped events and Arrow rows: the CPU-heavy part of
processing, as a pure function of its inputs so it can run in worker processes.

`digest(records, ctx)` takes queue records and returns a `Digest`: per-envelope summaries
for the issue counters (only the fields counting and alerts read), rows as Arrow tables (in a
worker: Arrow IPC files in a shared-memory spool directory, see `Spooled`), check-ins, user
reports, item outcome counts and warnings.
The same input always gives the same output (receive time, client IP and fallback event id
come with the record), which is what makes a replayed queue batch idempotent.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from heron.errors import rows
from heron.errors.envelope import Envelope, Item, decompress, parse_envelope, parse_store_body
from heron.errors.grouping import group
from heron.errors.normalize import clamp_ts, normalize, timestamp, user_key, valid_event_id
from heron.errors.scrub import Scrubber
from heron.exceptions import BadRequest

log = logging.getLogger("heron.errors.digest")
EVENT_TYPES = {"event", "transaction"}
KNOWN = {"event", "transaction", "check_in", "session", "sessions", "client_report", "attachment",
         "user_report", "feedback", "statsd", "metric_buckets", "profile", "replay_event",
         "replay_recording", "replay_video", "span", "otel_log", "log", "profile_chunk", "nel"}
COUNTED_FIELDS = ("event_id", "timestamp", "received", "level", "platform", "type", "title", "culprit",
                  "metadata", "release", "environment", "_user_key", "_unhandled", "_clamped")
"""What issue counting and alerts read of an event (the full event goes to storage only)."""

Record = tuple[int, str, str, str, str, float, str, bytes]
"""(project id, project slug, kind "envelope"|"store", encoding, client ip, received, event id, body)"""


@dataclass(frozen=True)
class Context:
    """Settings a digest depends on (picklable; sent to the workers with each chunk)."""
    scrub_enabled: bool
    scrub_fields: tuple[str, ...]
    scrub_safe: frozenset[str]
    scrub_ip: bool
    attachments_max_bytes: int
    span_columns: frozenset[str]
    spool: str = ""
    """Worker processes write their tables here (see `Spooled`); "" keeps them in memory."""


@dataclass(frozen=True)
class Spooled:
    """A table a worker wrote as an Arrow IPC file (in /dev/shm when there is one).

    40 KB events make a 1000-record piece ~40 MB of rows: pickled through the pool's pipe they
    cost a serialization, two pipe copies and a deserialization (~50 µs per event, with the GIL
    held in the server). A file costs one write; the server maps it without copying."""
    path: str


@dataclass
class Envelope1:
    """One envelope's outcome: what to count and what else to record."""
    project: int
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    check_ins: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Digest:
    envelopes: list[Envelope1] = field(default_factory=list)
    tables: dict[str, pa.Table | Spooled] = field(default_factory=dict)  # per storage table (`load`)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    discarded: Counter[tuple[str, str]] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)


_scrubbers: dict[Context, Scrubber] = {}


def _scrubber(ctx: Context) -> Scrubber:
    s = _scrubbers.get(ctx)
    if s is None:
        s = _scrubbers[ctx] = Scrubber(ctx.scrub_enabled, ctx.scrub_fields, ctx.scrub_safe, ctx.scrub_ip)
    return s


def digest(records: list[Record], ctx: Context) -> Digest:
    """Digest a chunk of queue records (see the module docstring).

    The cyclic garbage collector is off meanwhile: a chunk keeps hundreds of decoded events
    alive (millions of dicts and lists, all acyclic and freed by reference counting), and the
    collections their allocations trigger would traverse them all, again and again: ~20-30%
    of the digest's CPU at batch 500."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _digest(records, ctx)
    finally:
        if was_enabled:
            gc.enable()


def _digest(records: list[Record], ctx: Context) -> Digest:
    out = Digest()
    scrub = _scrubber(ctx)
    parts: dict[str, list[pa.Table]] = {}
    by_project: dict[int, list[tuple[Any, ...]]] = {}  # event rows in event order, per project
    for pid, slug, kind, encoding, ip, received, event_id, body in records:
        env1 = Envelope1(pid)
        events: list[tuple[int, dict[str, Any]]] = []
        transactions: list[dict[str, Any]] = []
        attachments: list[tuple[str, float, dict[str, Any], bytes]] = []
        sessions: list[tuple[float, str, str, str, int, str]] = []
        try:
            data = decompress(body, encoding or None)
            if kind == "store":
                raw = parse_store_body(data)
                env = Envelope({}, [Item("transaction" if raw.get("type") == "transaction" else "event", {}, b"")])
            else:
                raw, env = None, parse_envelope(data, view=True)  # payloads parsed in place, not copied
        except BadRequest as exc:
            out.outcomes["envelope", "invalid"] += 1
            out.warnings.append(f"project {slug}: envelope dropped after acceptance: {exc}")
            continue
        fallback_id = event_id or env.headers.get("event_id")  # what the request was answered with
        for it in env.items:
            t = it.type
            outcome = "accepted"
            try:
                if t in EVENT_TYPES:
                    payload = raw if raw is not None else it.json()
                    if not isinstance(payload, dict):
                        raise BadRequest(f"{t} item: payload must be a JSON object")
                    if fallback_id and not valid_event_id(payload.get("event_id")):
                        # the first event without a usable id gets the one the SDK heard back
                        payload, fallback_id = {**payload, "event_id": fallback_id}, None
                    ev = normalize(payload, received, ip or None, t)
                    if ev["timestamp"] == received and timestamp(payload.get("timestamp"), received) != received:
                        ev["_clamped"] = True  # no usable time of its own: a resend gets another one
                    scrub.event(ev)
                    if ev.get("type") == "transaction":
                        transactions.append(ev)
                    else:
                        ev["_user_key"] = user_key(ev.get("user"))
                        if ev.get("tags", {}).get("handled") == "no":
                            ev["_unhandled"] = True
                        iid = group(pid, ev)
                        # the row now, and only the counted fields kept: the decoded event is
                        # freed before the next one is decoded (its memory is reused, cache-warm)
                        by_project.setdefault(pid, []).append(rows.event_row(iid, ev))
                        events.append((iid, {k: ev[k] for k in COUNTED_FIELDS if k in ev}))
                elif t == "attachment":
                    if len(it.payload) > ctx.attachments_max_bytes:
                        outcome = "too_large"
                    else:
                        eid = str(env.headers.get("event_id") or it.headers.get("event_id") or "")
                        attachments.append((eid, received, it.headers, bytes(it.payload)))
                elif t == "check_in":
                    ci = it.json()
                    if not isinstance(ci, dict):
                        raise BadRequest("check_in item: payload must be a JSON object")
                    env1.check_ins.append((ci, received))
                elif t in ("session", "sessions"):
                    _sessions(it, received, sessions)
                elif t == "client_report":
                    _client_report(it, out.discarded)
                elif t in ("user_report", "feedback"):
                    rep = it.json()
                    if isinstance(rep, dict):
                        env1.reports.append(_user_report(t, rep))
                else:
                    outcome = "skipped"
            except BadRequest as exc:  # one bad item does not take the envelope's others with it
                outcome = "invalid"
                out.warnings.append(f"project {slug}: {t} item dropped: {exc}")
            except Exception as exc:  # a bug must not wedge the queue: count it, keep the rest
                outcome = "invalid"
                log.exception("project %s: %s item failed", slug, t)
                out.warnings.append(f"project {slug}: {t} item failed: {exc!r}")
            out.outcomes[t if t in KNOWN else "unknown", outcome] += 1
        env1.events = events
        if transactions and ctx.span_columns:
            parts.setdefault("spans", []).append(rows.span_rows(slug, transactions, set(ctx.span_columns)))
        if attachments:
            parts.setdefault("error_attachments", []).append(rows.attachment_rows(pid, attachments))
        if sessions:
            parts.setdefault("error_sessions", []).append(rows.session_rows(pid, sessions))
        out.envelopes.append(env1)
    if by_project:
        parts["error_events"] = [rows.event_table(pid, evs) for pid, evs in by_project.items()]
    for name, tables in parts.items():
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        out.tables[name] = spool(table, ctx.spool) if ctx.spool else table
    return out


def watch_parent(parent: int) -> None:
    """Worker initializer: exit when the server process is gone (after `kill -9` the pool's
    pipes stay open in the worker itself, so it would otherwise wait forever)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="heron-parent-watch", daemon=True).start()


def spool(table: pa.Table, directory: str) -> Spooled:
    path = os.path.join(directory, f"{uuid.uuid4().hex}.arrows")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return Spooled(path)


def load(table: pa.Table | Spooled) -> pa.Table:
    """A digest's table; a spooled one is memory-mapped (no copy) and its file unlinked at once
    (the mapping keeps the pages until the table is freed)."""
    if isinstance(table, pa.Table):
        return table
    try:
        return pa.ipc.open_stream(pa.memory_map(table.path)).read_all()
    finally:
        os.unlink(table.path)


def discard(digests: list[Digest]) -> None:
    """Remove the spool files of digests that will not be loaded."""
    for d in digests:
        for t in d.tables.values():
            if isinstance(t, Spooled):
                with contextlib.suppress(OSError):
                    os.unlink(t.path)


def _user_report(kind: str, rep: dict[str, Any]) -> dict[str, Any]:
    if kind == "feedback":
        ctx: dict[str, Any] = rep["contexts"] if isinstance(rep.get("contexts"), dict) else {}
        fb: dict[str, Any] = ctx["feedback"] if isinstance(ctx.get("feedback"), dict) else {}
        return {"event_id": fb.get("associated_event_id") or rep.get("event_id"),
                "name": fb.get("name"), "email": fb.get("contact_email"), "comments": fb.get("message")}
    return rep


def _client_report(it: Item, discarded: Counter[tuple[str, str]]) -> None:
    rep = it.json()
    for d in (rep.get("discarded_events") or []) if isinstance(rep, dict) else []:
        if isinstance(d, dict) and isinstance(d.get("quantity"), int) and d["quantity"] > 0:
            discarded[str(d.get("reason", ""))[:64], str(d.get("category", ""))[:64]] += d["quantity"]


def _sessions(it: Item, received: float, out: list[tuple[float, str, str, str, int, str]]) -> None:
    data = it.json()
    if not isinstance(data, dict):
        raise BadRequest(f"{it.type} item: payload must be a JSON object")
    attrs: dict[str, Any] = data["attrs"] if isinstance(data.get("attrs"), dict) else {}
    release, env = str(attrs.get("release") or "")[:250], str(attrs.get("environment") or "")[:64]
    if it.type == "session":
        out.append((clamp_ts(data.get("started"), received), release, env,
                    str(data.get("status") or "ok")[:32], 1, str(data.get("did") or "")[:128]))
        return
    for agg in data.get("aggregates") or []:
        if not isinstance(agg, dict):
            continue
        ts = clamp_ts(agg.get("started"), received)
        for status in ("exited", "errored", "abnormal", "crashed"):
            n = agg.get(status)
            if isinstance(n, int) and n > 0:
                out.append((ts, release, env, status, min(n, 2**31), str(agg.get("did") or "")[:128]))
