"""Prometheus' and Alertmanager's template functions (`humanize*`, `query`, `reReplaceAll`, ...).

Each follows its Go original (prometheus/template/template.go, alertmanager/template/template.go)
so that an annotation renders the same text in Heron as in Prometheus.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from heron.templating.builtins import BUILTINS
from heron.templating.execute import SafeHTML
from heron.templating.gofmt import go_duration, go_time, go_type, go_value


@dataclass
class QuerySample:
    """One element of a `query` result: `.Labels` and `.Value`, as in Prometheus templates."""

    Labels: dict[str, str] = field(default_factory=dict)
    Value: float = 0.0


QueryFunc = Callable[[str], Sequence[QuerySample]]


def to_float(v: Any) -> float:
    """convertToFloat: numbers, numeric strings, durations (seconds) and times (Unix seconds)."""
    if isinstance(v, bool):
        raise ValueError(f"can't convert {go_type(v)} to float")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip().replace("Inf", "inf").replace("+inf", "inf"))
        except ValueError:
            raise ValueError(f'strconv.ParseFloat: parsing "{v}": invalid syntax') from None
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, datetime):
        return v.timestamp()
    raise ValueError(f"can't convert {go_type(v)} to float")


def _g4(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.4g}"


def humanize(i: Any) -> str:
    v = to_float(i)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    if abs(v) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return _g4(v) + prefix
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return _g4(v) + prefix


def humanize1024(i: Any) -> str:
    v = to_float(i)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return _g4(v) + prefix


def humanize_duration(i: Any) -> str:
    v = to_float(i)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) >= 1:
        sign = ""
        if v < 0:
            sign, v = "-", -v
        d = int(v)
        seconds, minutes, hours, days = d % 60, (d // 60) % 60, (d // 3600) % 24, d // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{_g4(v)}{prefix}s"


def humanize_percentage(i: Any) -> str:
    return _g4(to_float(i) * 100) + "%"


def _time_of(v: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(v * 1e6))


def humanize_timestamp(i: Any) -> str:
    v = to_float(i)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    return go_time(_time_of(v))


class GoTime(datetime):
    """A datetime that prints like Go's time.Time."""

    def __str__(self) -> str:
        return go_time(self)


class GoDuration(timedelta):
    """A timedelta that prints like Go's time.Duration."""

    def __str__(self) -> str:
        return go_duration(self.total_seconds())


def to_time(i: Any) -> datetime:
    v = to_float(i)
    if math.isnan(v) or math.isinf(v):
        raise ValueError(f"cannot convert {go_value(v)} to time.Time")
    t = _time_of(v)
    return GoTime(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, tzinfo=UTC)


def to_duration(i: Any) -> timedelta:
    v = to_float(i)
    if math.isnan(v) or math.isinf(v):
        raise ValueError(f"cannot convert {go_value(v)} to time.Duration")
    return GoDuration(seconds=v)


def go_regex(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern with Python's re (named groups spelled `(?<n>` become `(?P<n>`)."""
    return re.compile(re.sub(r"\(\?<(?![=!])", "(?P<", pattern))


def go_expand(template: str, m: re.Match[str]) -> str:
    """regexp.Expand: `$1`, `${1}`, `$name`, `${name}`, `$$`; unknown groups expand to ""."""
    def rep(x: re.Match[str]) -> str:
        if x.group(0) == "$$":
            return "$"
        name = x.group(1) or x.group(2)
        try:
            g = m.group(int(name)) if name.isdigit() else m.group(name)
        except (IndexError, re.error):
            return ""
        return g or ""
    return re.sub(r"\$\$|\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)", rep, template)



def re_replace_all(pattern: str, repl: str, text: str) -> str:
    return go_regex(pattern).sub(lambda m: go_expand(repl, m), text)


def match(pattern: str, text: str) -> bool:
    return go_regex(pattern).search(text) is not None


def title(s: str) -> str:
    """strings.Title: upper-case the first letter of every word."""
    out, prev = [], " "
    for c in s:
        out.append(c.upper() if _is_separator(prev) else c)
        prev = c
    return "".join(out)


def _is_separator(c: str) -> bool:
    if c.isascii():
        return not (c.isalnum() or c == "_")
    if c.isalpha() or c.isdigit():
        return False
    return c.isspace()


def strip_port(hostport: str) -> str:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end > 0 and hostport[end + 1:end + 2] == ":":
            return hostport[1:end]
        return hostport
    host, sep, _port = hostport.rpartition(":")
    if not sep or ":" in host:
        return hostport
    return host


def strip_domain(hostport: str) -> str:
    host, port = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end > 0:
            host, port = hostport[1:end], hostport[end + 2:] if hostport[end + 1:end + 2] == ":" else ""
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    try:
        ipaddress.ip_address(host)
        return hostport
    except ValueError:
        pass
    host = host.split(".")[0]
    if port:
        return f"{host}:{port}"
    return host


def first(v: Sequence[QuerySample]) -> QuerySample:
    if v:
        return v[0]
    raise ValueError("first() called on vector with no elements")


def label(name: str, s: QuerySample) -> str:
    return s.Labels.get(name, "") if s is not None else ""


def value(s: QuerySample) -> float:
    return s.Value


def strvalue(s: QuerySample) -> str:
    return s.Labels.get("__value__", "")


def sort_by_label(name: str, v: Sequence[QuerySample]) -> list[QuerySample]:
    return sorted(v, key=lambda s: s.Labels.get(name, ""))


def args(*a: Any) -> dict[str, Any]:
    return {f"arg{i}": x for i, x in enumerate(a)}


def parse_duration(s: str) -> float:
    from heron.templating.durations import parse_prom_duration

    return parse_prom_duration(s)


def _tmpl(executor: Any, name: str, data: Any) -> SafeHTML:
    return SafeHTML(executor.render_named(name, data))


_GO_LAYOUT = [("2006", "%Y"), ("January", "%B"), ("Jan", "%b"), ("Monday", "%A"), ("Mon", "%a"),
              ("MST", "%Z"), ("-07:00", "%:z"), ("-0700", "%z"), ("Z07:00", "Z%:z"),
              ("01", "%m"), ("02", "%d"), ("15", "%H"), ("03", "%I"), ("04", "%M"), ("05", "%S"),
              ("PM", "%p"), ("06", "%y"), ("_2", "%e")]


def go_strftime(layout: str, t: datetime) -> str:
    """time.Time.Format with Go's reference-time layout (common elements)."""
    out, i = [], 0
    while i < len(layout):
        for go, py in _GO_LAYOUT:
            if layout.startswith(go, i):
                if py == "%:z":
                    z = t.strftime("%z")
                    out.append(z[:3] + ":" + z[3:] if z else "+00:00")
                elif py == "Z%:z":
                    z = t.strftime("%z")
                    out.append("Z" if z in ("", "+0000") else z[:3] + ":" + z[3:])
                elif py == "%e":
                    out.append(f"{t.day:2d}")
                else:
                    out.append(t.strftime(py))
                i += len(go)
                break
        else:
            if layout.startswith((".000", ".999"), i):
                n = 3
                j = i + 1
                while j < len(layout) and layout[j] == layout[i + 1]:
                    j += 1
                n = j - i - 1
                frac = f"{t.microsecond:06d}{'000'}"[:n]
                if layout[i + 1] == "9":
                    frac = frac.rstrip("0")
                    out.append("." + frac if frac else "")
                else:
                    out.append("." + frac)
                i = j
            else:
                out.append(layout[i])
                i += 1
    return "".join(out)


def _date(fmt: str, t: datetime) -> str:
    return go_strftime(fmt, t)


def _tz(name: str, t: datetime) -> datetime:
    return t.astimezone(ZoneInfo(name))


def _since(t: datetime) -> timedelta:
    return GoDuration(seconds=(datetime.now(UTC) - t).total_seconds())


def _join(sep: str, items: Sequence[Any]) -> str:
    return sep.join(go_value(x) for x in items)


def _to_json(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), default=str)


def common_funcs() -> dict[str, Callable[..., Any]]:
    """Functions both Prometheus and Alertmanager templates have, text/template's built-ins included.

    Built-ins are in the map so that a caller expanding many templates merges them once.
    """
    return {
        **BUILTINS,
        "toUpper": lambda s: s.upper(), "toLower": lambda s: s.lower(), "title": title,
        "match": match, "reReplaceAll": re_replace_all, "safeHtml": SafeHTML,
        "humanizeDuration": humanize_duration, "join": _join,
    }


def prometheus_funcs(query: QueryFunc | None = None, external_url: str = "",
                     path_prefix: str = "") -> dict[str, Callable[..., Any]]:
    """Prometheus' funcMap; `query` runs an instant PromQL query at the evaluation time."""
    def _query(q: str) -> list[QuerySample]:
        if query is None:
            raise ValueError("query is not available in this context")
        return list(query(q))

    def _graph(expr: str) -> str:
        return f"{path_prefix}/graph?g0.expr={urllib.parse.quote(expr, safe='')}&g0.tab=0"

    def _table(expr: str) -> str:
        return f"{path_prefix}/graph?g0.expr={urllib.parse.quote(expr, safe='')}&g0.tab=1"

    funcs = common_funcs()
    funcs.update({
        "query": _query, "first": first, "label": label, "value": value, "strvalue": strvalue,
        "sortByLabel": sort_by_label, "args": args, "tmpl": _tmpl,
        "humanize": humanize, "humanize1024": humanize1024, "humanizePercentage": humanize_percentage,
        "humanizeTimestamp": humanize_timestamp, "toTime": to_time, "toDuration": to_duration,
        "parseDuration": parse_duration, "stripPort": strip_port, "stripDomain": strip_domain,
        "graphLink": _graph, "tableLink": _table, "pathPrefix": lambda: path_prefix,
        "externalURL": lambda: external_url, "now": lambda: to_time(datetime.now(UTC).timestamp()),
    })
    return funcs


def alertmanager_funcs() -> dict[str, Callable[..., Any]]:
    """Alertmanager's DefaultFuncs (plus `humanize*` conveniences)."""
    funcs = common_funcs()
    funcs.update({
        # Alertmanager's title is cases.Title: the rest of each word is lower-cased
        "title": lambda s: title(s.lower()),
        "trimSpace": lambda s: s.strip(" \t\n\r\v\f"), "safeUrl": SafeHTML,
        "urlUnescape": urllib.parse.unquote, "stringSlice": lambda *s: list(s),
        "date": _date, "tz": _tz, "since": _since, "toJson": _to_json,
        "list": lambda *a: list(a), "append": lambda lst, *a: [*lst, *a],
        "dict": _dict, "humanize": humanize, "humanize1024": humanize1024,
        "humanizePercentage": humanize_percentage, "humanizeTimestamp": humanize_timestamp,
    })
    return funcs


def _dict(*kv: Any) -> dict[Any, Any]:
    if len(kv) % 2:
        raise ValueError("dict requires an even number of arguments")
    return {kv[i]: kv[i + 1] for i in range(0, len(kv), 2)}


def labels_of(m: Mapping[str, str]) -> dict[str, str]:
    return dict(m)
