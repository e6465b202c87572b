"""The /api/v1/query(_range) JSON body, encoded straight from the result's arrays.

A range result can hold millions of points; building a Python tuple and a dict per point and
handing them to `json` cost seconds. Here values are formatted a whole array at a time (orjson
writes shortest round-trip digits, integers go through int64) and the body is joined from
bytes. The text is Prometheus': values as strconv 'f' -1 strings ("NaN", "+Inf", "-Inf", no
exponent), timestamps as jsonutil.MarshalTimestamp writes them (seconds, ms fraction if any).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import orjson

from heron.promql.result import Result, format_value

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _split(arr: np.ndarray) -> list[bytes]:
    if len(arr) == 0:
        return []
    return orjson.dumps(np.ascontiguousarray(arr), option=_NUMPY)[1:-1].split(b",")


def format_values(v: np.ndarray) -> list[bytes]:
    """Prometheus' text of every float in `v` (1-D), as bytes."""
    v = np.asarray(v, np.float64)
    n = len(v)
    if n == 0:
        return []
    a = np.abs(v)
    with np.errstate(invalid="ignore"):
        zero = v == 0
        negz = zero & np.signbit(v)
        normal = a < 1e15  # false for NaN and ±Inf
        intlike = normal & (v == np.trunc(v))
        # NaN, ±Inf, -0 and magnitudes Python/orjson would write with an exponent
        odd = ~normal | ((a < 1e-4) & ~zero)
        if negz.any():
            intlike &= ~negz
            odd |= negz
    if not odd.any():
        if intlike.all():
            return _split(v.astype(np.int64))
        if not intlike.any():
            return _split(v)
    out = np.empty(n, dtype=object)
    if intlike.any():
        out[intlike] = _split(v[intlike].astype(np.int64))
    rest = ~intlike & ~odd
    if rest.any():
        out[rest] = _split(v[rest])
    for i in np.nonzero(odd & ~intlike)[0].tolist():
        out[i] = format_value(float(v[i])).encode()
    return list(out.tolist())


def format_time(ms: int) -> bytes:
    """jsonutil.MarshalTimestamp: whole seconds, then '.' and three ms digits when not zero."""
    sign = b"-" if ms < 0 else b""
    ms = abs(ms)
    s, frac = divmod(ms, 1000)
    return sign + (b"%d.%03d" % (s, frac) if frac else b"%d" % s)


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _time_prefixes(times: np.ndarray, grid: np.ndarray | None) -> list[bytes]:
    """b'[<time>,"' for every timestamp in `times`, formatting each distinct time once."""
    if grid is not None and len(grid) and len(times):
        pos = np.searchsorted(grid, times).clip(0, len(grid) - 1)
        if (grid[pos] == times).all():
            pref = np.array([b"[" + format_time(int(t)) + b',"' for t in grid.tolist()], dtype=object)
            return list(pref[pos].tolist())
    uniq, inv = np.unique(times, return_inverse=True)
    pref = np.array([b"[" + format_time(int(t)) + b',"' for t in uniq.tolist()], dtype=object)
    return list(pref[inv].tolist())


CHUNK_POINTS = 1 << 16  # points formatted at a time: the per-point byte strings stay few


def _matrix(res: Result, series: list[Any], grid: np.ndarray | None) -> list[bytes]:
    if not series:
        return [b"[]"]
    # Series with a point at every step share one %-template of the step times.
    template = b""
    if grid is not None:
        template = b",".join([b"[" + format_time(t) + b',"%s"]' for t in grid.tolist()])
    parts = [b"["]
    i = 0
    while i < len(series):
        j, points = i, 0
        while j < len(series) and (j == i or points + len(series[j].values) <= CHUNK_POINTS):
            points += len(series[j].values)
            j += 1
        parts.append(_matrix_chunk(series[i:j], grid, template))
        i = j
    parts[-1] = parts[-1][:-1]  # the last series' trailing comma
    parts.append(b"]")
    return parts


def _matrix_chunk(series: list[Any], grid: np.ndarray | None, template: bytes) -> bytes:
    vals = format_values(np.concatenate([s.values for s in series]))
    dense = [grid is not None and (s.times_ms is grid or (len(s.times_ms) == len(grid)
                                                       and bool((s.times_ms == grid).all())))
             for s in series]
    sparse = [s.times_ms for s, d in zip(series, dense, strict=True) if not d]
    prefixes = _time_prefixes(np.concatenate(sparse), grid) if sparse else []
    parts: list[bytes] = []
    a = p = 0
    for s, d in zip(series, dense, strict=True):
        c = len(s.values)
        if c == 0:
            pts = b""
        elif d:
            pts = template % tuple(vals[a:a + c])
        else:
            pts = b'"],'.join(map(operator.add, prefixes[p:p + c], vals[a:a + c])) + b'"]'
            p += c
        parts += (b'{"metric":', _dumps(s.labels), b',"values":[', pts, b"]},")
        a += c
    return b"".join(parts)


def _vector(res: Result, samples: list[Any]) -> bytes:
    if not samples:
        return b"[]"
    vals = format_values(np.array([s.value for s in samples], np.float64))
    cache: dict[float, bytes] = {}
    parts = []
    for s, v in zip(samples, vals, strict=True):
        t = cache.get(s.time)
        if t is None:
            t = cache[s.time] = format_time(round(s.time * 1000))
        parts.append(b'{"metric":' + _dumps(s.labels) + b',"value":[' + t + b',"' + v + b'"]}')
    return b"[" + b",".join(parts) + b"]"


def query_body(res: Result, limit: int | None = None, grid: np.ndarray | None = None) -> bytes:
    """The whole success reply of a query; `limit` truncates the series (with a warning)."""
    warnings = list(res.warnings)
    if res.type == "matrix":
        items: list[Any] = res.matrix
    elif res.type == "vector":
        items = res.vector
    else:
        items = []
    if limit and len(items) > limit:
        items = items[:limit]
        warnings.append("results truncated due to limit")
    head = b'{"status":"success","data":{"resultType":"' + res.type.encode() + b'","result":'
    if res.type == "matrix":
        parts = [head, *_matrix(res, items, grid)]
    elif res.type == "vector":
        parts = [head, _vector(res, items)]
    elif res.type == "scalar":
        assert res.scalar is not None
        parts = [head, b"[" + format_time(round(res.scalar[0] * 1000)) + b',"'
                 + format_values(np.array([res.scalar[1]]))[0] + b'"]']
    else:
        assert res.string is not None
        parts = [head, b"[" + format_time(round(res.string[0] * 1000)) + b"," + _dumps(res.string[1]) + b"]"]
    parts.append(b"}")
    if warnings:
        parts += (b',"warnings":', _dumps(warnings))
    if res.infos:
        parts += (b',"infos":', _dumps(list(res.infos)))
    parts.append(b"}")
    return b"".join(parts)
