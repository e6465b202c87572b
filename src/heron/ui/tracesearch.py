"""Trace search for the Traces page, the way Jaeger's search form works: traces in a time range
that hold a span matching service / operation / min-max duration / error, newest first, each
summarised by its root span (service, name), duration, span count and error count.
The waterfall itself reads one trace through heron.traces.query.get_trace.
"""

from __future__ import annotations

from typing import Any

from heron.exceptions import BadRequest
from heron.storage.base import Storage

MAX_LIMIT = 500
UNITS = {"us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000}


def parse_duration_ns(value: str, field: str) -> int | None:
    """'250ms', '1.5s', '300us' → nanoseconds; '' → None."""
    v = value.strip()
    if not v:
        return None
    for unit in sorted(UNITS, key=len, reverse=True):
        if v.endswith(unit):
            try:
                n = float(v[: -len(unit)])
            except ValueError:
                break
            if n < 0:
                break
            return int(n * UNITS[unit])
    raise BadRequest(f"{field}: {value[:40]!r} is not a duration like 250ms, 1.5s or 300us")


def search(storage: Storage, start_ns: int, end_ns: int, service: str = "", operation: str = "",
           min_duration: str = "", max_duration: str = "", errors_only: bool = False,
           limit: int = 50) -> dict[str, Any]:
    lo = parse_duration_ns(min_duration, "min_duration")
    hi = parse_duration_ns(max_duration, "max_duration")
    match = ["1"]
    params: dict[str, Any] = {"start": int(start_ns), "end": int(end_ns)}
    if service:
        match.append("service = {service:String}")
        params["service"] = service
    if operation:
        match.append("name = {operation:String}")
        params["operation"] = operation
    if lo is not None:
        match.append("duration_ns >= {lo:UInt64}")
        params["lo"] = lo
    if hi is not None:
        match.append("duration_ns <= {hi:UInt64}")
        params["hi"] = hi
    if errors_only:
        match.append("status = 'error'")
    db = storage.database
    span_range = ("start >= fromUnixTimestamp64Nano({start:Int64}) AND "
                  "start <= fromUnixTimestamp64Nano({end:Int64})")
    limit = max(1, min(int(limit), MAX_LIMIT))
    rows = storage.execute(f"""
        SELECT trace_id,
               min(toUnixTimestamp64Nano(start)) AS t_start,
               max(toUnixTimestamp64Nano(start) + duration_ns) - t_start AS t_duration,
               count() AS spans,
               countIf(status = 'error') AS errors,
               argMinIf(service, start, parent_span_id = '') AS root_service,
               argMinIf(name, start, parent_span_id = '') AS root_name,
               argMin(service, start) AS first_service,
               argMin(name, start) AS first_name,
               arraySort(groupUniqArray(service)) AS services
        FROM `{db}`.spans WHERE {span_range}
        GROUP BY trace_id HAVING countIf({' AND '.join(match)}) > 0
        ORDER BY t_start DESC LIMIT {limit}""", params).to_pylist()
    for r in rows:  # a trace whose root span is not (yet) stored is named by its earliest span
        r["start_ns"], r["duration_ns"] = r.pop("t_start"), r.pop("t_duration")
        rs, rn, fs, fn = r.pop("root_service"), r.pop("root_name"), r.pop("first_service"), r.pop("first_name")
        r["root_service"], r["root_name"] = (rs, rn) if (rs or rn) else (fs, fn)
    services = storage.execute(f"SELECT DISTINCT service FROM `{db}`.spans WHERE {span_range} "
                               f"ORDER BY service LIMIT 500", params).column(0).to_pylist()
    operations = storage.execute(f"SELECT DISTINCT name FROM `{db}`.spans WHERE {span_range} AND service = "
                                 f"{{service:String}} ORDER BY name LIMIT 500",
                                 {**params, "service": service}).column(0).to_pylist() if service else []
    return {"traces": rows, "services": services, "operations": operations}
