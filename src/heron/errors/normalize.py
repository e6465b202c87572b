"""One canonical event shape out of whatever an SDK sent (Sentry's store normalization, condensed).

Takes the decoded JSON of an `event`/`transaction` item and returns a new dict that the rest of
Heron relies on: a 32-hex `event_id`, a float `timestamp` (clamped to a sane window), a known
`level` and `platform`, `exception.values` / `breadcrumbs.values` / `threads.values` as lists,
tags as a dict of strings, frames with `in_app` decided, and the derived `title`, `culprit`,
`metadata` and `type`. Strings are truncated; wrong types are dropped, never raised on.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from typing import Any

LEVELS = {"fatal", "error", "warning", "info", "debug"}
LEVEL_ALIASES = {"warn": "warning", "critical": "fatal", "log": "info", "err": "error", "trace": "debug"}
PLATFORMS = {"as3", "c", "cfml", "cocoa", "csharp", "elixir", "go", "groovy", "haskell", "java",
             "javascript", "native", "node", "objc", "other", "perl", "php", "python", "ruby", "dart",
             "rust", "kotlin", "swift"}
MAX_STRING = 8192
MAX_TAG = 200
MAX_BREADCRUMBS = 100
MAX_FUTURE = 60.0
MAX_PAST = 30 * 86400.0
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_NOT_IN_APP = re.compile(r"(site-packages|dist-packages|node_modules|/lib/python\d|<frozen |"
                         r"^internal/|^node:|/usr/lib/)")


def valid_event_id(value: Any) -> str | None:
    """The 32-hex form of an event id (dashes and case removed), or None if it is not one."""
    if isinstance(value, str):
        v = value.replace("-", "").lower()
        if _HEX32.match(v):
            return v
    return None


def event_id(value: Any) -> str:
    return valid_event_id(value) or uuid.uuid4().hex


def timestamp(value: Any, received: float) -> float | None:
    """Unix seconds from a number or an RFC 3339 string; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value == value and abs(value) < 1e11 else None
    if isinstance(value, str) and value:
        try:
            if value.replace(".", "", 1).isdigit():
                return float(value)
            d = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if d.tzinfo is None:
                d = d.replace(tzinfo=dt.UTC)
            return d.timestamp()
        except (ValueError, OverflowError):
            return None
    return None


def clamp_ts(value: Any, received: float) -> float:
    ts = timestamp(value, received)
    if ts is None or ts > received + MAX_FUTURE or ts < received - MAX_PAST:
        return received
    return ts


def _str(value: Any, limit: int = MAX_STRING) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, bool | int | float):
            value = str(value).lower() if isinstance(value, bool) else str(value)
        else:
            return None
    return value[:limit]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _values(value: Any) -> list[Any]:
    """`{"values": [...]}` or a bare list, as a list of dicts."""
    if isinstance(value, dict):
        value = value.get("values")
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _pairs(value: Any, limit: int = MAX_STRING) -> dict[str, str]:
    """A dict or a list of [key, value] pairs as a dict of strings."""
    if isinstance(value, list):
        value = {p[0]: p[1] for p in value if isinstance(p, list | tuple) and len(p) == 2
                 and isinstance(p[0], str)}
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, v in value.items():
        s = _str(v, limit)
        if isinstance(k, str) and k and s is not None:
            out[k[:limit]] = s
    return out


def level(value: Any) -> str:
    v = str(value).lower() if isinstance(value, str) else "error"
    v = LEVEL_ALIASES.get(v, v)
    return v if v in LEVELS else "error"


_STR_ONLY = frozenset({str})
_FRAME_STRINGS = ("filename", "abs_path", "function", "raw_function", "module", "package", "platform",
                  "context_line", "instruction_addr", "symbol")


def frame(f: dict[str, Any]) -> dict[str, Any]:
    # The hot loop of normalization (50+ frames per event): plain strings, the common case, are
    # taken without a call; anything else goes through _str.
    out: dict[str, Any] = {}
    for key in _FRAME_STRINGS:
        v = f.get(key)
        if v is None:
            continue
        if v.__class__ is str:
            out[key] = v if len(v) <= 1024 else v[:1024]
        else:
            s = _str(v, 1024)
            if s is not None:
                out[key] = s
    for key in ("lineno", "colno"):
        v = f.get(key)
        if v.__class__ is int:
            out[key] = v
    for key in ("pre_context", "post_context"):
        lines = f.get(key)
        if lines.__class__ is list:
            if len(lines) <= 10 and _STR_ONLY.issuperset(map(type, lines)) and max(map(len, lines), default=0) <= 1024:
                out[key] = lines[:]  # the usual case, checked at C speed: nothing to cut
            else:
                out[key] = [s for s in (x[:1024] if x.__class__ is str else _str(x, 1024) for x in lines[:10])
                            if s is not None]
    v = f.get("vars")
    if isinstance(v, dict):
        out["vars"] = v
    v = f.get("in_app")
    if v.__class__ is bool:
        out["in_app"] = v
    else:
        path = out.get("abs_path") or out.get("filename") or ""
        out["in_app"] = bool(path) and not _NOT_IN_APP.search(path)
    return out


_MISSING: Any = object()
FRAME_CACHE = 20_000
"""Distinct frames remembered per process (about 1-2 KB each): the error paths of an app."""
_frames: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}


def cached_frame(f: dict[str, Any]) -> dict[str, Any]:
    """`frame(f)`, memoized: the events of one bug share their frames (file, function, line,
    context lines) and differ in the locals (`vars`), so a frame seen before is recognized by
    one C-level dict comparison of its other fields and its normalized form copied.

    `==` equates 1, 1.0 and True while `frame` does not: the look-up key carries the classes of
    the numbers, and only frames whose text fields are strings (and lists of strings) are
    remembered, since those compare equal only to their own kind. The output is the same as
    `frame(f)`, with `vars` last."""
    lineno, in_app = f.get("lineno"), f.get("in_app")
    key = (f.get("abs_path"), f.get("filename"), f.get("function"), lineno, lineno.__class__,
           in_app.__class__, f.get("colno").__class__)
    try:
        hit = _frames.get(key)
    except TypeError:  # an unhashable value where a string or number belongs
        return frame(f)
    rest = f.copy()
    v = rest.pop("vars", _MISSING)
    if hit is not None and hit[0] == rest:
        out = hit[1].copy()
    else:
        out = frame(rest)
        if _textual(rest):
            if len(_frames) >= FRAME_CACHE:
                _frames.clear()
            _frames[key] = (rest, out.copy())  # `rest` is this call's own copy: nothing else holds it
    if isinstance(v, dict):
        out["vars"] = v
    return out


def _textual(f: dict[str, Any]) -> bool:
    for key in _FRAME_STRINGS:
        v = f.get(key)
        if v is not None and v.__class__ is not str:
            return False
    for key in ("pre_context", "post_context"):
        v = f.get(key)
        if v is not None and not (v.__class__ is list and _STR_ONLY.issuperset(map(type, v))):
            return False
    return True


def stacktrace(st: Any) -> dict[str, Any] | None:
    if not isinstance(st, dict) or not isinstance(st.get("frames"), list):
        return None
    frames = [cached_frame(f) for f in st["frames"][-250:] if isinstance(f, dict)]
    return {"frames": frames} if frames else None


def exception(e: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("type", "value", "module", "thread_id"):
        s = _str(e.get(key))
        if s is not None:
            out[key] = s
    st = stacktrace(e.get("stacktrace"))
    if st:
        out["stacktrace"] = st
    if isinstance(e.get("mechanism"), dict):
        out["mechanism"] = e["mechanism"]
    return out


def breadcrumb(b: dict[str, Any], received: float) -> dict[str, Any]:
    # 30-100 per event: the common shapes (a float timestamp, a known level, short strings) are
    # taken inline; anything else goes through the general helpers, with the same result.
    ts = b.get("timestamp")
    if ts.__class__ is float and ts == ts and abs(ts) < 1e11:
        ts = ts or received
    else:
        ts = timestamp(ts, received) or received
    lv = b.get("level")
    if lv.__class__ is not str or lv not in LEVELS:
        lv = level(lv or "info")
    kind = b.get("type")
    if kind.__class__ is not str or len(kind) > 64:
        kind = _str(kind, 64)
    out: dict[str, Any] = {"timestamp": ts, "level": lv, "type": kind or "default"}
    for key in ("category", "message"):
        v = b.get(key)
        if v.__class__ is str and len(v) <= MAX_STRING:
            out[key] = v
        elif v is not None:
            v = _str(v)
            if v is not None:
                out[key] = v
    if isinstance(b.get("data"), dict):
        out["data"] = b["data"]
    return out


def request(r: Any) -> dict[str, Any] | None:
    if not isinstance(r, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("url", "method", "fragment", "api_target"):
        s = _str(r.get(key))
        if s is not None:
            out[key] = s.upper() if key == "method" else s
    qs = r.get("query_string")
    if isinstance(qs, str):
        out["query_string"] = qs[:MAX_STRING]
    elif isinstance(qs, dict | list):
        out["query_string"] = _pairs(qs)
    for key in ("headers", "env"):
        if r.get(key) is not None:
            out[key] = _pairs(r[key])
    cookies = r.get("cookies")
    if isinstance(cookies, str):
        out["cookies"] = {k.strip(): v for k, _, v in (c.partition("=") for c in cookies.split(";")) if k.strip()}
    elif cookies is not None:
        out["cookies"] = _pairs(cookies)
    if "data" in r:
        out["data"] = r["data"]
    return out


def user(u: Any, client_ip: str | None) -> dict[str, Any] | None:
    if not isinstance(u, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("id", "email", "username", "ip_address", "name", "segment", "geo"):
        if key == "geo":
            if isinstance(u.get("geo"), dict):
                out["geo"] = _pairs(u["geo"], 256)
            continue
        s = _str(u.get(key), 256)
        if s is not None:
            out[key] = s
    if out.get("ip_address") == "{{auto}}":
        if client_ip:
            out["ip_address"] = client_ip
        else:
            out.pop("ip_address")
    if isinstance(u.get("data"), dict):
        out["data"] = u["data"]
    return out or None


def user_key(u: dict[str, Any] | None) -> str:
    """Who counts as one affected user: id, else email, username, IP (Sentry's tag `user`)."""
    if not u:
        return ""
    for key, prefix in (("id", "id"), ("email", "email"), ("username", "username"), ("ip_address", "ip")):
        if u.get(key):
            return f"{prefix}:{u[key]}"
    return ""


def logentry(event: dict[str, Any]) -> dict[str, Any] | None:
    le = event.get("logentry") or event.get("sentry.interfaces.Message")
    msg = event.get("message")
    out: dict[str, Any] = {}
    if isinstance(le, dict):
        for key in ("message", "formatted"):
            s = _str(le.get(key))
            if s is not None:
                out[key] = s
        if isinstance(le.get("params"), list | dict):
            out["params"] = le["params"]
    elif isinstance(le, str):
        out["message"] = le[:MAX_STRING]
    if isinstance(msg, str) and msg and "formatted" not in out:
        out["formatted"] = msg[:MAX_STRING]
    elif isinstance(msg, dict) and not out:
        return logentry({"logentry": msg})
    if "formatted" not in out and "message" in out:
        out["formatted"] = _format(out["message"], out.get("params"))
    return out or None


def _format(template: str, params: Any) -> str:
    try:
        if isinstance(params, list) and params:
            return template % tuple(params) if "%" in template else template.format(*params)
        if isinstance(params, dict) and params:
            return template % params if "%(" in template else template.format(**params)
    except (TypeError, ValueError, KeyError, IndexError):
        pass
    return template


def normalize(raw: dict[str, Any], received: float | None = None, client_ip: str | None = None,
              item_type: str = "event") -> dict[str, Any]:
    """The canonical event (see the module docstring); `raw` is not modified."""
    received = received if received is not None else time.time()
    ev: dict[str, Any] = {"event_id": event_id(raw.get("event_id")),
                          "timestamp": clamp_ts(raw.get("timestamp"), received),
                          "received": received,
                          "level": level(raw.get("level")),
                          "platform": p if isinstance(p := raw.get("platform"), str) and p in PLATFORMS else "other"}
    for key, limit in (("logger", 64), ("server_name", 256), ("release", 250), ("dist", 64),
                       ("environment", 64), ("transaction", 200), ("culprit", 200)):
        s = _str(raw.get(key), limit)
        if s:
            ev[key] = s.strip()
    if item_type == "transaction" or raw.get("type") == "transaction":
        ev["type"] = "transaction"
        start = timestamp(raw.get("start_timestamp"), received)
        ev["start_timestamp"] = start if start is not None and ev["timestamp"] - 86400 <= start <= ev["timestamp"] \
            else ev["timestamp"]
        ev["spans"] = [s for s in raw.get("spans") or [] if isinstance(s, dict)] \
            if isinstance(raw.get("spans"), list) else []
    le = logentry(raw)
    if le:
        ev["logentry"] = le
    excs = [exception(e) for e in _values(raw.get("exception"))]
    if excs:
        ev["exception"] = {"values": excs}
    threads = _values(raw.get("threads"))
    if threads:
        ev["threads"] = {"values": [{**t, "stacktrace": stacktrace(t.get("stacktrace"))} for t in threads[:50]]}
    crumbs = _values(raw.get("breadcrumbs"))
    if crumbs:
        ev["breadcrumbs"] = {"values": [breadcrumb(b, received) for b in crumbs[-MAX_BREADCRUMBS:]]}
    tags = _pairs(raw.get("tags"), MAX_TAG)
    mechanisms = [e["mechanism"] for e in excs if isinstance(e.get("mechanism"), dict)]
    if mechanisms:  # Sentry's own tags: what caught the error, and whether the app did
        tags.setdefault("handled", "no" if any(m.get("handled") is False for m in mechanisms) else "yes")
        tags.setdefault("mechanism", str(mechanisms[-1].get("type") or "generic")[:MAX_TAG])
    if tags:
        ev["tags"] = tags
    for key in ("contexts", "extra", "modules", "sdk", "debug_meta", "measurements"):
        if isinstance(raw.get(key), dict):
            ev[key] = raw[key]
    req = request(raw.get("request"))
    if req:
        ev["request"] = req
    u = user(raw.get("user"), client_ip)
    if u:
        ev["user"] = u
    fp = raw.get("fingerprint")
    if isinstance(fp, list) and fp:
        ev["fingerprint"] = [str(x)[:MAX_TAG] for x in fp if isinstance(x, str | int | float)][:32]
    derive(ev)
    return ev


def derive(ev: dict[str, Any]) -> None:
    """Title, culprit, metadata and type, as Sentry shows them in issue lists."""
    excs = ev.get("exception", {}).get("values") or []
    if ev.get("type") == "transaction":
        ev["title"] = ev.get("transaction") or "<unlabeled transaction>"
        ev.setdefault("culprit", ev.get("transaction", ""))
        ev["metadata"] = {"title": ev["title"]}
        return
    if excs:
        top = excs[-1]  # the last value is the outermost exception
        etype, value = top.get("type") or "Error", top.get("value") or ""
        ev["type"] = "error"
        ev["title"] = f"{etype}: {value.splitlines()[0] if value else ''}".rstrip(": ")[:200] if value \
            else etype[:200]
        ev["metadata"] = {"type": etype, "value": value[:200]}
        frames = (top.get("stacktrace") or {}).get("frames") or []
        app = [f for f in frames if f.get("in_app")] or frames
        if app:
            f = app[-1]
            ev["metadata"].update({k: f[k] for k in ("filename", "function") if k in f})
            if "culprit" not in ev:
                where = f.get("module") or f.get("filename") or "?"
                ev["culprit"] = f"{f.get('function', '?')} in {where}"[:200] if ev.get("platform") != "python" \
                    else f"{where} in {f.get('function', '?')}"[:200]
    else:
        le = ev.get("logentry") or {}
        text = le.get("formatted") or le.get("message") or "<unlabeled event>"
        ev["type"] = "default"
        ev["title"] = text.splitlines()[0][:200] if text.strip() else "<unlabeled event>"
        ev["metadata"] = {"title": ev["title"]}
    ev.setdefault("culprit", ev.get("transaction", ""))
