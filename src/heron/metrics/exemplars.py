"""Exemplars: a sample's link to one traced request (trace_id), stored and queried.

Every metrics receiver hands its exemplars over as `(series labels, exemplar labels, ts ms,
value)` rows; `exemplar_table` turns them into `metric_exemplars` rows, written in the same
pipeline submit as the samples (so both are durable together). `query` answers
`/api/v1/query_exemplars` as Prometheus does: the exemplars of every series matched by any
vector selector of the query, within [start, end].
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from heron.exceptions import BadRequest
from heron.metrics.model import Labels, series_id
from heron.metrics.writer import labels_map
from heron.storage.base import Storage

EXEMPLARS_SCHEMA = pa.schema([("series_id", pa.uint64()), ("ts", pa.int64()), ("value", pa.float64()),
                              ("labels", pa.map_(pa.string(), pa.string())), ("trace_id", pa.string())])
TRACE_ID_LABELS = ("trace_id", "traceID", "traceId", "TraceID")

ExemplarRow = tuple[Labels, Labels, int, float]
"""(series labels, exemplar labels, timestamp ms, value)."""


def as_labels(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple(sorted((k, v) for k, v in items if v != ""))


def trace_id_of(labels: Labels) -> str:
    """The trace id an exemplar carries (OpenTelemetry and client libraries name it differently)."""
    for name, value in labels:
        if name in TRACE_ID_LABELS:
            return value
    return ""


def exemplar_table(rows: Sequence[ExemplarRow], ids: Sequence[int] | None = None) -> pa.Table:
    """`metric_exemplars` rows; `ids` are the series ids when the caller already has them."""
    sids = list(ids) if ids is not None else [series_id(r[0]) for r in rows]
    return pa.table([pa.array(sids, pa.uint64()), pa.array([r[2] for r in rows], pa.int64()),
                     pa.array([r[3] for r in rows], pa.float64()), labels_map([r[1] for r in rows]),
                     pa.array([trace_id_of(r[1]) for r in rows], pa.string())], schema=EXEMPLARS_SCHEMA)


# Newest exemplars kept per series (limits.metrics.max_exemplars_per_series, 0: all), by
# database; set by heron.metrics.limits.limiter_of, applied by `query`.
PER_SERIES: dict[str, int] = {}

_OM_EXEMPLAR = re.compile(r"\s*\{(.*)\}\s+(\S+)(?:\s+(\S+))?\s*$")


def parse_openmetrics(text: str, default_ts_ms: int) -> tuple[Labels, float, int]:
    """The part after `#` of an OpenMetrics sample line: `{labels} value [timestamp seconds]`."""
    from heron.metrics.exposition import parse_labels

    m = _OM_EXEMPLAR.match(text)
    if m is None:
        raise BadRequest(f"invalid exemplar {text.strip()[:100]!r}")
    try:
        labels = as_labels(parse_labels(m.group(1)))
        value = float(m.group(2))
        ts = round(float(m.group(3)) * 1000) if m.group(3) else default_ts_ms
    except ValueError as exc:
        raise BadRequest(f"invalid exemplar {text.strip()[:100]!r}: {exc}") from None
    if sum(len(k) + len(v) for k, v in labels) > 128:  # OpenMetrics: at most 128 UTF-8 characters
        raise BadRequest(f"exemplar labels longer than 128 characters: {text.strip()[:100]!r}")
    return labels, value, ts


def selectors_of(root: Any) -> list[Any]:
    """Every VectorSelector of a promql-parser AST (inside functions, ranges, subqueries...)."""
    out: list[Any] = []
    stack = [root]
    while stack:
        node = stack.pop()
        kind = type(node).__name__
        if kind == "VectorSelector":
            out.append(node)
        elif kind == "MatrixSelector":
            stack.append(node.vector_selector)
        elif kind == "Call":
            stack.extend(reversed(node.args))
        elif kind == "BinaryExpr":
            stack += [node.rhs, node.lhs]
        elif kind == "AggregateExpr":
            stack += [x for x in (node.expr, node.param) if x is not None]
        elif hasattr(node, "expr"):  # ParenExpr, SubqueryExpr, UnaryExpr
            stack.append(node.expr)
    return out


def query(storage: Storage, expr: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """Prometheus' query_exemplars result: [{seriesLabels, exemplars: [{labels, value, timestamp}]}]."""
    from heron.promql.fetch import where_clause
    from heron.promql.parse import ParsedQuery, matcher_groups
    from heron.promql.result import format_value

    groups = [g for vs in selectors_of(ParsedQuery(expr).root) for g in matcher_groups(vs)]
    if not groups:
        return []
    db = storage.database
    # A series' buffer holds its newest exemplars (Prometheus' circular buffer): pick those,
    # then the ones of them inside [start, end].
    cap = PER_SERIES.get(db, 0)
    newest = f"ORDER BY series_id, ts DESC LIMIT {int(cap)} BY series_id" if cap > 0 else ""
    t = storage.execute(
        f"SELECT e.series_id AS sid, any(s.lbls) AS series_labels, "
        f"groupArray((e.ts, e.value, e.labels)) AS points "
        f"FROM (SELECT * FROM (SELECT series_id, ts, value, labels FROM `{db}`.metric_exemplars FINAL "
        f"      WHERE series_id IN (SELECT series_id FROM `{db}`.metric_series WHERE {where_clause(groups)}) "
        f"      {newest}) WHERE ts >= {int(start_ms)} AND ts <= {int(end_ms)}) AS e "
        f"INNER JOIN (SELECT series_id, any(labels) AS lbls FROM `{db}`.metric_series "
        f"            WHERE {where_clause(groups)} GROUP BY series_id) AS s ON e.series_id = s.series_id "
        f"GROUP BY sid ORDER BY sid")
    out: list[dict[str, Any]] = []
    for row in t.to_pylist():
        points = sorted(row["points"], key=lambda p: p[0] if isinstance(p, tuple) else p["1"])
        exemplars = []
        for p in points:
            ts, value, labels = p if isinstance(p, tuple) else (p["1"], p["2"], p["3"])
            exemplars.append({"labels": dict(sorted(labels)), "value": format_value(value), "timestamp": ts / 1000})
        out.append({"seriesLabels": dict(sorted((k, v) for k, v in row["series_labels"] if v != "")),
                    "exemplars": exemplars})
    out.sort(key=lambda r: sorted(r["seriesLabels"].items()))
    return out

