"""Normalized events, transactions, sessions and attachments as Arrow rows for storage.

Events go to `error_events` (ordered by project, issue, ts; the full event as JSON in `data`).
Transactions go to the traces store `spans`: the transaction is the root span (attribute
`sentry.segment` = "true", so performance queries find them) and its child spans follow, all
with `service` = the project slug and the release/environment as resource attributes.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pyarrow as pa

from heron.errors.normalize import timestamp

STRMAP = pa.map_(pa.string(), pa.string())
EVENTS_SCHEMA = pa.schema([
    ("project", pa.uint32()), ("issue", pa.uint64()), ("ts", pa.timestamp("ms", tz="UTC")),
    ("event_id", pa.string()), ("level", pa.string()), ("platform", pa.string()),
    ("environment", pa.string()), ("release", pa.string()), ("title", pa.string()),
    ("culprit", pa.string()), ("message", pa.string()), ("transaction", pa.string()),
    ("user_key", pa.string()), ("tags", STRMAP), ("data", pa.string())])
ATTACHMENTS_SCHEMA = pa.schema([
    ("project", pa.uint32()), ("event_id", pa.string()), ("ts", pa.timestamp("ms", tz="UTC")),
    ("name", pa.string()), ("content_type", pa.string()), ("attachment_type", pa.string()),
    ("size", pa.uint64()), ("data", pa.binary())])
SESSIONS_SCHEMA = pa.schema([
    ("project", pa.uint32()), ("ts", pa.timestamp("ms", tz="UTC")), ("release", pa.string()),
    ("environment", pa.string()), ("status", pa.string()), ("quantity", pa.uint32()),
    ("distinct_id", pa.string())])
SPAN_FIELDS = [("trace_id", pa.string()), ("span_id", pa.string()), ("parent_span_id", pa.string()),
               ("service", pa.string()), ("name", pa.string()), ("kind", pa.string()),
               ("start", pa.timestamp("ns", tz="UTC")), ("duration_ns", pa.uint64()),
               ("status", pa.string()), ("status_message", pa.string()),
               ("attributes", STRMAP), ("resource", STRMAP)]
# Sentry span status -> OTLP status code.
_OK = {"ok", "", None}


def event_row(issue: int, ev: dict[str, Any]) -> tuple[Any, ...]:
    """One `error_events` row without its project (see `event_table`), the event as JSON bytes:
    digesting turns each event into its row at once, so the decoded event can be freed."""
    le = ev.get("logentry") or {}
    exc = ((ev.get("exception") or {}).get("values") or [{}])[-1]
    tags = dict(ev.get("tags") or {})
    tags.setdefault("level", ev["level"])
    for key in ("environment", "release", "server_name", "transaction"):
        if ev.get(key):
            tags.setdefault(key, ev[key])
    if ev.get("_user_key"):
        tags.setdefault("user", ev["_user_key"])
    return (issue, int(ev["timestamp"] * 1000), ev["event_id"], ev["level"], ev["platform"],
            ev.get("environment", ""), ev.get("release", ""), ev["title"], ev.get("culprit", ""),
            le.get("formatted") or exc.get("value") or "", ev.get("transaction", ""), ev.get("_user_key", ""),
            list(tags.items()), dumps_bytes({k: v for k, v in ev.items() if not k.startswith("_")}))


def event_table(project: int, rows: list[tuple[Any, ...]]) -> pa.Table:
    cols: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in range(len(EVENTS_SCHEMA) - 1)]
    arrays = [pa.array([project] * len(rows), pa.uint32())]
    for values, f in zip(cols[:-1], list(EVENTS_SCHEMA)[1:-1], strict=True):
        arrays.append(pa.array(values, f.type))
    # orjson writes UTF-8: the JSON goes in as bytes and is viewed as a string (no re-check)
    arrays.append(pa.array(cols[-1], pa.binary()).view(pa.string()))
    return pa.Table.from_arrays(arrays, schema=EVENTS_SCHEMA)


def event_rows(project: int, events: list[tuple[int, dict[str, Any]]]) -> pa.Table:
    return event_table(project, [event_row(issue, ev) for issue, ev in events])


def dumps_bytes(value: Any) -> bytes:
    """`dumps` as UTF-8 bytes."""
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return json.dumps(value, default=str, separators=(",", ":")).encode()


def dumps(value: Any) -> str:
    """Compact JSON (orjson: a 40 KB event in ~50 µs); integers beyond 64 bits become strings."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return json.dumps(value, default=str, separators=(",", ":"))


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def _flat(data: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(data, dict):
        for k, v in list(data.items())[:64]:
            _flat(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif data is not None:
        out[prefix] = data if isinstance(data, str) else json.dumps(data, default=str)[:1024]


def span_rows(slug: str, transactions: list[dict[str, Any]], columns: set[str]) -> pa.Table:
    """Transactions and their spans as rows of `spans` (only the columns the table has)."""
    fields = [f for f in SPAN_FIELDS if f[0] in columns or (f[0] == "status" and "status_code" in columns)]
    cols: dict[str, list[Any]] = {f[0]: [] for f in fields}

    def add(trace: str, span: str, parent: str, name: str, kind: str, start: float, end: float,
            status: str | None, attrs: dict[str, str], resource: dict[str, str]) -> None:
        row = {"trace_id": trace, "span_id": span, "parent_span_id": parent, "service": slug, "name": name,
               "kind": kind, "start": _ns(start), "duration_ns": max(0, _ns(end) - _ns(start)),
               "status": "ok" if status in _OK else "error", "status_message": "" if status in _OK else status,
               "attributes": list(attrs.items()), "resource": list(resource.items())}
        for f in fields:
            cols[f[0]].append(row[f[0]])

    for tx in transactions:
        trace_ctx = (tx.get("contexts") or {}).get("trace")
        trace_ctx = trace_ctx if isinstance(trace_ctx, dict) else {}
        trace = str(trace_ctx.get("trace_id") or tx["event_id"])[:32]
        root = str(trace_ctx.get("span_id") or tx["event_id"][:16])[:16]
        sdk: dict[str, Any] = tx["sdk"] if isinstance(tx.get("sdk"), dict) else {}
        resource = {"service.name": slug, "telemetry.sdk.name": str(sdk.get("name", ""))}
        for key, attr in (("release", "service.version"), ("environment", "deployment.environment")):
            if tx.get(key):
                resource[attr] = tx[key]
        op = str(trace_ctx.get("op") or "")
        attrs = {"sentry.segment": "true", "sentry.op": op, "sentry.event_id": tx["event_id"],
                 "sentry.transaction": tx["title"]}
        for k, v in (tx.get("tags") or {}).items():  # normalized: a dict of strings
            attrs[f"tag.{k}"] = v
        _flat(trace_ctx.get("data"), "", attrs)
        kind = "server" if op.startswith("http.server") else "internal"
        add(trace, root, str(trace_ctx.get("parent_span_id") or ""), tx["title"], kind, tx["start_timestamp"],
            tx["timestamp"], trace_ctx.get("status"), attrs, resource)
        for sp in tx.get("spans") or []:
            start = timestamp(sp.get("start_timestamp"), tx["received"])
            end = timestamp(sp.get("timestamp"), tx["received"])
            if start is None or end is None:
                continue
            # keep child spans inside a sane window around their transaction (DateTime64 range)
            start = min(max(start, tx["start_timestamp"] - 86400), tx["timestamp"] + 86400)
            end = min(max(end, start), start + 86400)
            sop = str(sp.get("op") or "")
            sattrs = {"sentry.op": sop, "sentry.description": str(sp.get("description") or "")[:1024]}
            _flat(sp.get("data"), "", sattrs)
            for k, v in (sp["tags"] if isinstance(sp.get("tags"), dict) else {}).items():
                sattrs[f"tag.{k}"] = str(v)
            skind = "client" if sop.startswith(("http.client", "db", "cache", "redis")) else "internal"
            add(str(sp.get("trace_id") or trace)[:32], str(sp.get("span_id") or "")[:16],
                str(sp.get("parent_span_id") or root)[:16], (sop or "span") + (
                    f" {sp['description']}"[:120] if sp.get("description") else ""),
                skind, float(start), float(end), sp.get("status"), sattrs, resource)
    arrays = [pa.array(cols[name], type_) for name, type_ in fields]
    names = [("status_code" if n == "status" and "status" not in columns else n) for n, _ in fields]
    return pa.Table.from_arrays(arrays, names=names)


def attachment_rows(project: int, items: list[tuple[str, float, dict[str, Any], bytes]]) -> pa.Table:
    cols: dict[str, list[Any]] = {f.name: [] for f in ATTACHMENTS_SCHEMA}
    for event_id, ts, headers, payload in items:
        cols["project"].append(project)
        cols["event_id"].append(event_id)
        cols["ts"].append(int(ts * 1000))
        cols["name"].append(str(headers.get("filename") or "attachment")[:256])
        cols["content_type"].append(str(headers.get("content_type") or "application/octet-stream")[:128])
        cols["attachment_type"].append(str(headers.get("attachment_type") or "event.attachment")[:64])
        cols["size"].append(len(payload))
        cols["data"].append(payload)
    return pa.table([pa.array(cols[f.name], f.type) for f in ATTACHMENTS_SCHEMA], schema=ATTACHMENTS_SCHEMA)


def session_rows(project: int, rows: list[tuple[float, str, str, str, int, str]]) -> pa.Table:
    cols: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in range(6)]
    data = [[project] * len(rows), [int(t * 1000) for t in cols[0]], *cols[1:]]
    return pa.table([pa.array(c, f.type) for c, f in zip(data, SESSIONS_SCHEMA, strict=True)],
                    schema=SESSIONS_SCHEMA)
