"""Log search for the Logs page: a LogQL-shaped filter over the `logs` table.

    {service="api", level=~"error|warn"} |= "timeout" != "healthz" |~ "user=[0-9]+"

The stream selector's labels are `service`, `level` (severity text, case-insensitive) and any
resource or record attribute (`{k8s.pod.name="x"}`), with `=`, `!=`, `=~`, `!~` (RE2, fully
anchored as in LogQL). Line filters `|=`, `!=`, `|~`, `!~` apply to the body in order. A query
without a selector is a plain substring search. Errors name the 1-based column, as LogQL does.
A full LogQL engine (parsers, metrics queries) is not this: it is what a person types in a box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from heron.exceptions import BadRequest
from heron.logs.query import LOG_COLUMNS
from heron.storage.base import Storage

MAX_LIMIT = 5000
_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<op>\|=|\|~|!=|!~|=~|=|\{|\}|,)|(?P<name>[A-Za-z_][\w.]*))""")


@dataclass
class LogQuery:
    matchers: list[tuple[str, str, str]]  # (label, op, value)
    filters: list[tuple[str, str]]  # (op, text)


def _unquote(s: str) -> str:
    if s.startswith("`"):
        return s[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s[1:-1])


def parse(text: str) -> LogQuery:
    """LogQL-ish text → matchers and line filters; BadRequest with the column on bad input."""
    q = LogQuery([], [])
    src = text.strip()
    if not src:
        return q
    if not src.startswith("{") and not src.startswith(("|=", "|~", "!=", "!~")):
        q.filters.append(("|=", src))  # a bare word or phrase: substring search
        return q
    toks: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            if src[pos:].strip() == "":
                break
            bad = pos + len(src[pos:]) - len(src[pos:].lstrip())
            raise BadRequest(f"column {bad + 1}: unexpected {src[bad:bad + 10]!r}")
        kind = m.lastgroup or ""
        toks.append((kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    i = 0

    def need(kind: str, what: str) -> str:
        nonlocal i
        if i >= len(toks) or toks[i][0] != kind or (kind == "op" and toks[i][1] not in what.split()):
            col = toks[i][2] if i < len(toks) else len(src) + 1
            raise BadRequest(f"column {col}: expected {what}")
        i += 1
        return toks[i - 1][1]

    if toks and toks[0][1] == "{":
        i = 1
        while i < len(toks) and toks[i][1] != "}":
            label = need("name", "a label name")
            op = need("op", "= != =~ !~")
            value = _unquote(need("str", "a quoted value"))
            if op in ("=~", "!~"):
                _check_re(value, toks[i - 1][2])
            q.matchers.append((label, op, value))
            if i < len(toks) and toks[i][1] == ",":
                i += 1
        need("op", "}")
    while i < len(toks):
        op = need("op", "|= != |~ !~")
        col = toks[i][2] if i < len(toks) else len(src) + 1
        value = _unquote(need("str", "a quoted string"))
        if op in ("|~", "!~"):
            _check_re(value, col)
        q.filters.append((op, value))
    return q


def _check_re(value: str, col: int) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise BadRequest(f"column {col}: invalid regular expression: {exc}") from None


def _label_expr(label: str) -> str:
    if label == "service":
        return "service"
    if label in ("level", "severity", "detected_level"):
        return "lower(severity_text)"
    if label == "trace_id":
        return "trace_id"
    return "if(mapContains(attributes, {%s:String}), attributes[{%s:String}], resource[{%s:String}])"


def search(storage: Storage, query: str, start_ns: int, end_ns: int, limit: int = 500,
           service: str = "", level: str = "") -> dict[str, Any]:
    """Newest records first, plus a histogram of matching records over the range."""
    q = parse(query)
    if service:
        q.matchers.append(("service", "=", service))
    if level:
        q.matchers.append(("level", "=", level))
    where = ["ts >= fromUnixTimestamp64Nano({start:Int64})", "ts <= fromUnixTimestamp64Nano({end:Int64})"]
    params: dict[str, Any] = {"start": int(start_ns), "end": int(end_ns)}
    for n, (label, op, value) in enumerate(q.matchers):
        expr = _label_expr(label)
        if "%s" in expr:
            params[f"l{n}"] = label
            expr = expr % ((f"l{n}",) * 3)
        if label in ("level", "severity", "detected_level"):
            value = value.lower()
        params[f"m{n}"] = value if op in ("=", "!=") else f"^(?:{value})$"
        sql = {"=": "{e} = {{m{n}:String}}", "!=": "{e} != {{m{n}:String}}",
               "=~": "match({e}, {{m{n}:String}})", "!~": "NOT match({e}, {{m{n}:String}})"}[op]
        where.append(sql.format(e=expr, n=n))
    for n, (op, value) in enumerate(q.filters):
        params[f"f{n}"] = value
        where.append({"|=": "position(body, {{f{n}:String}}) > 0", "!=": "position(body, {{f{n}:String}}) = 0",
                      "|~": "match(body, {{f{n}:String}})", "!~": "NOT match(body, {{f{n}:String}})"}[op].format(n=n))
    db = storage.database
    cond = " AND ".join(where)
    limit = max(1, min(int(limit), MAX_LIMIT))
    rows = storage.execute(f"SELECT {LOG_COLUMNS} FROM `{db}`.logs WHERE {cond} ORDER BY ts DESC LIMIT {limit}",
                           params).to_pylist()
    for r in rows:
        r["attributes"], r["resource"] = dict(r["attributes"]), dict(r["resource"])
    bucket = max(1, (end_ns - start_ns) // 60 // 1_000_000_000)  # ~60 bars
    hist = storage.execute(
        f"SELECT intDiv(toUnixTimestamp(ts) - {{s0:Int64}}, {bucket}) AS b, lower(severity_text) AS level, count() AS n "
        f"FROM `{db}`.logs WHERE {cond} GROUP BY b, level ORDER BY b", {**params, "s0": start_ns // 1_000_000_000}
    ).to_pylist()
    services = storage.execute(
        f"SELECT DISTINCT service FROM `{db}`.logs WHERE ts >= fromUnixTimestamp64Nano({{start:Int64}}) "
        f"AND ts <= fromUnixTimestamp64Nano({{end:Int64}}) ORDER BY service LIMIT 500", params).column(0).to_pylist()
    return {"logs": rows, "bucket_s": bucket, "start_s": start_ns // 1_000_000_000,
            "histogram": [{"b": h["b"], "level": h["level"], "n": h["n"]} for h in hist], "services": services}
