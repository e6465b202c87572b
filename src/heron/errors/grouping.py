"""Which issue an event belongs to, following Sentry's grouping order.

1. A custom `fingerprint` wins; `{{ default }}` inside it expands to the default components
   (and `{{ type }}`, `{{ message }}`, `{{ transaction }}`, `{{ function }}`, `{{ module }}`,
   `{{ level }}` to those values).
2. Otherwise, exceptions: for every exception of the chain (causes and contexts, so a
   `ValueError` raised from a `KeyError` is not the same issue as a bare `ValueError`), its type
   plus its in-app frames (all frames if none is in-app), each frame as module-or-file, function
   and normalized context line. Line numbers are left out so edits elsewhere keep the group.
   An exception without frames contributes its type and its value with parameters removed.
3. Otherwise, the log message template (or the formatted message with numbers, ids, hashes and
   addresses replaced by placeholders).

The issue id is a 63-bit hash of the project and the components: stable, so an event row can
be written without first asking the control store.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

_PARAMS = [
    (re.compile(r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?\b"), "<date>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b[0-9a-fA-F]{16,}\b"), "<hex>"),
    (re.compile(r"(?<![\w.])-?\d+(\.\d+)?(?![\d.])"), "<int>"),
    (re.compile(r"'[^'\n]{1,200}'|\"[^\"\n]{1,200}\""), "<str>"),
]
_ADDR = re.compile(r" at 0x[0-9a-fA-F]+")
_LAMBDA = re.compile(r"<lambda>|<anonymous>|\$\d+|\d+")


def parameterize(text: str) -> str:
    """Remove the variable parts of a message so its occurrences group together."""
    for pattern, repl in _PARAMS:
        text = pattern.sub(repl, text)
    return text.strip()


_keys: dict[tuple[Any, ...], str] = {}


def _frame_key(f: dict[str, Any]) -> str:
    """`frame_key(f)`, remembered: the frames of a bug recur in every one of its events."""
    k = (f.get("module"), f.get("filename"), f.get("abs_path"), f.get("function"), f.get("context_line"))
    try:
        return _keys[k]
    except KeyError:
        if len(_keys) >= 50_000:
            _keys.clear()
        key = _keys[k] = frame_key(f)
        return key


def frame_key(f: dict[str, Any]) -> str:
    """A frame's grouping component: module (else file name), function, context line."""
    where = f.get("module") or re.sub(r"^.*[/\\]", "", f.get("filename") or f.get("abs_path") or "")
    where = re.sub(r"\?.*$|\.[0-9a-f]{8,}\.", "", where)  # cache-busting suffixes in JS bundles
    func = _ADDR.sub("", f.get("function") or "")
    func = _LAMBDA.sub("?", func) if "lambda" in func or "anonymous" in func else func
    ctx = (f.get("context_line") or "").strip()
    if len(ctx) > 120:  # minified or generated code: not a stable signal
        ctx = ""
    return f"{where}|{func}|{ctx}"


def exception_components(ev: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for exc in (ev.get("exception") or {}).get("values") or []:
        mech = exc.get("mechanism")
        if isinstance(mech, dict) and mech.get("is_exception_group"):  # "[Filtered]" by a scrub rule
            continue  # the group wrapper itself; its children carry the signal
        frames = (exc.get("stacktrace") or {}).get("frames") or []
        app = [f for f in frames if f.get("in_app")] or frames
        out.append("type:" + (exc.get("type") or "Error"))
        if app:
            out.extend("frame:" + _frame_key(f) for f in app)
        else:
            out.append("value:" + parameterize(exc.get("value") or ""))
    return out


def message_components(ev: dict[str, Any]) -> list[str]:
    le = ev.get("logentry") or {}
    if le.get("message") and le.get("params") is not None:
        return ["message:" + le["message"]]
    text = le.get("formatted") or le.get("message") or ev.get("title") or ""
    return ["message:" + parameterize(text)]


def default_components(ev: dict[str, Any]) -> list[str]:
    if ev.get("exception"):
        return exception_components(ev)
    if ev.get("threads") and not ev.get("logentry"):
        frames = [f for t in ev["threads"]["values"] if t.get("crashed") or t.get("current")
                  for f in (t.get("stacktrace") or {}).get("frames") or []]
        if frames:
            return ["frame:" + _frame_key(f) for f in (f for f in frames if f.get("in_app"))]
    return message_components(ev)


def components(ev: dict[str, Any]) -> list[str]:
    fp = ev.get("fingerprint")
    if not fp:
        return default_components(ev)
    out: list[str] = []
    for part in fp:
        var = part.strip()
        if var.startswith("{{") and var.endswith("}}"):
            var = var[2:-2].strip().lower()
            if var == "default":
                out.extend(default_components(ev))
                continue
            excs = (ev.get("exception") or {}).get("values") or [{}]
            frames = ((excs[-1].get("stacktrace") or {}).get("frames") or [{}])
            value = {"type": excs[-1].get("type"), "error.type": excs[-1].get("type"),
                     "message": (ev.get("logentry") or {}).get("formatted"),
                     "transaction": ev.get("transaction"), "level": ev.get("level"),
                     "function": frames[-1].get("function"), "module": frames[-1].get("module")}.get(var)
            out.append(f"{var}:{value or ''}")
        else:
            out.append("fp:" + part)
    return out


def issue_id(project: int, parts: list[str]) -> int:
    h = hashlib.sha1(f"{project}\x1e".encode() + "\x1f".join(parts).encode(), usedforsecurity=False)
    return (int.from_bytes(h.digest()[:8], "big") >> 1) or 1


def group(project: int, ev: dict[str, Any]) -> int:
    """The issue id of a normalized event."""
    return issue_id(project, components(ev))
