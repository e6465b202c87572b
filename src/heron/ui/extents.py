"""Reuse of overlapping range results (Cortex/Thanos query-frontend "extents"): a dashboard on
"Last 6 hours" asks again every refresh for a range moved by a few steps; the steps it already
has are taken from the previous reply and only the new ones are evaluated.

Sound because a PromQL range query is evaluated step by step, each step on its own (subquery
steps are aligned to absolute time, not to the range), so a step's value does not depend on the
range around it. Except: `@ start()` / `@ end()` (any `@` is excluded), and samples that may still
arrive for recent steps: steps newer than `FRESH` seconds are always evaluated again.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

FRESH = 300.0
MAX_AGE = 600.0  # a reused step was evaluated at most this long ago: backfills show within 10 min
VARYING = {"start", "end"}
REFUSED = {"limit", "stats", "time"}


@dataclass
class Extent:
    start: float
    end: float
    step: float
    body: bytes  # the reply as sent: parsed again only when reused (bytes are the cheap form)
    expires: float
    born: float  # when its oldest reused steps were evaluated


def extent_key(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...] | None:
    params = dict(pairs)
    if "@" in params.get("query", "@") or REFUSED & params.keys():
        return None
    return tuple(sorted((k, v) for k, v in pairs if k not in VARYING))


class Extents:
    def __init__(self, max_bytes: int) -> None:
        self.items: OrderedDict[tuple[tuple[str, str], ...], Extent] = OrderedDict()
        self.max_bytes = max_bytes
        self.size = 0

    def lookup(self, key: tuple[tuple[str, str], ...], start: float, end: float, step: float,
               now: float) -> tuple[Extent, float] | None:
        """(extent, last reusable step) when the stored reply covers a prefix of [start, end]."""
        e = self.items.get(key)
        if e is None or e.expires <= now or e.step != step or now - e.born > MAX_AGE:
            return None
        k = (start - e.start) / step
        if abs(k - round(k)) > 1e-9 or not (e.start <= start <= e.end):
            return None
        settled = e.start + math.floor((now - FRESH - e.start) / step) * step
        reuse_end = min(e.end, end, settled)
        if reuse_end < start:
            return None
        self.items.move_to_end(key)
        return e, reuse_end

    def store(self, key: tuple[tuple[str, str], ...], e: Extent) -> None:
        old = self.items.pop(key, None)
        if old is not None:
            self.size -= len(old.body)
        self.items[key] = e
        self.size += len(e.body)
        while self.size > self.max_bytes and self.items:
            self.size -= len(self.items.popitem(last=False)[1].body)


MATRIX_HEAD = b'{"status":"success","data":{"resultType":"matrix","result":'


def is_matrix(body: bytes) -> bool:
    """What `parse_matrix` accepts, for Heron's own replies, without parsing them (a reply of
    10k series took ~5 ms to parse on the event loop): the encoder's matrix prefix and no
    warnings. A label named "warnings" also matches the second test: then nothing is stored."""
    return body.startswith(MATRIX_HEAD) and b',"warnings":' not in body


def parse_matrix(body: bytes) -> list[dict[str, Any]] | None:
    """The result of a successful matrix reply without warnings, else None."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    if doc.get("status") != "success" or "warnings" in doc or not isinstance(data, dict) \
            or data.get("resultType") != "matrix":
        return None
    result = data.get("result")
    return result if isinstance(result, list) else None


def merge(old: list[dict[str, Any]], start: float, reuse_end: float,
          new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps [start, reuse_end] of `old` followed by `new` (later steps), series matched by labels,
    in Prometheus' order (sorted by label set)."""
    out: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    eps = 1e-6
    for s in old:
        values = [v for v in s.get("values", []) if start - eps <= float(v[0]) <= reuse_end + eps]
        if values:
            out[_labels_key(s["metric"])] = {"metric": s["metric"], "values": values}
    for s in new:
        k = _labels_key(s["metric"])
        if k in out:
            out[k]["values"] = out[k]["values"] + s.get("values", [])
        else:
            out[k] = {"metric": s["metric"], "values": list(s.get("values", []))}
    return [out[k] for k in sorted(out)]


def _labels_key(metric: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(metric.items()))  # compares as Prometheus' labels.Compare


def body(result: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
