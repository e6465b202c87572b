"""Series, label and TSDB-status lookups (the non-query half of the Prometheus API).

`match[]` selectors are parsed with promql-parser and turned into the same SQL conditions as
query selectors. A time range, when given, keeps only series with samples inside it; when the
in-memory head (`head=`) covers that range, it answers without SQL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.metrics.head import Head
from heron.metrics.model import Labels
from heron.promql.fetch import Matcher, where_clause
from heron.promql.parse import ParsedQuery, ParseError, matcher_groups
from heron.storage.base import Storage


def selector_groups(selectors: list[str]) -> list[list[Matcher]]:
    """`match[]` selectors into matcher groups (ORed)."""
    groups: list[list[Matcher]] = []
    for text in selectors:
        node = ParsedQuery(text).root
        if type(node).__name__ != "VectorSelector":
            raise ParseError(f"invalid parameter \"match[]\": {text!r} is not a series selector")
        groups.extend(matcher_groups(node))
    return groups


def _filter(storage: Storage, groups: list[list[Matcher]] | None, start_ms: int | None,
            end_ms: int | None) -> str:
    cond = where_clause(groups) if groups else "1"
    if start_ms is not None or end_ms is not None:
        lo = start_ms if start_ms is not None else -(2**62)
        hi = end_ms if end_ms is not None else 2**62
        cond = (f"({cond}) AND series_id IN (SELECT DISTINCT series_id FROM `{storage.database}`"
                f".metric_samples WHERE ts >= {int(lo)} AND ts <= {int(hi)})")
    return cond


def _from_head(head: Head | None, groups: list[list[Matcher]] | None, start_ms: int | None,
               end_ms: int | None) -> list[Labels] | None:
    """Series with samples in the range, from the in-memory head when it covers the range."""
    if head is None or start_ms is None or end_ms is None:
        return None
    return head.series(groups or [[]], start_ms, end_ms)


def series(storage: Storage, groups: list[list[Matcher]], start_ms: int | None = None,
           end_ms: int | None = None, limit: int | None = None, head: Head | None = None
           ) -> list[dict[str, str]]:
    found = _from_head(head, groups, start_ms, end_ms)
    if found is not None:
        return [dict(lb) for lb in (found[:limit] if limit else found)]
    cond = _filter(storage, groups, start_ms, end_ms)
    lim = f" LIMIT {int(limit)}" if limit else ""
    t = storage.execute(f"SELECT any(labels) AS lbls FROM `{storage.database}`.metric_series "
                        f"WHERE {cond} GROUP BY series_id{lim}")
    out = [dict(sorted((k, v) for k, v in row if v != "")) for row in t.column("lbls").to_pylist()] \
        if t.num_rows else []
    out.sort(key=lambda d: sorted(d.items()))
    return out


def label_names(storage: Storage, groups: list[list[Matcher]] | None = None, start_ms: int | None = None,
                end_ms: int | None = None, limit: int | None = None, head: Head | None = None) -> list[str]:
    found = _from_head(head, groups, start_ms, end_ms)
    if found is not None:
        names = sorted({k for lb in found for k, _ in lb})
        return names[:limit] if limit else names
    cond = _filter(storage, groups, start_ms, end_ms)
    t = storage.execute(f"SELECT DISTINCT arrayJoin(mapKeys(labels)) AS name FROM "
                        f"`{storage.database}`.metric_series WHERE {cond} ORDER BY name"
                        + (f" LIMIT {int(limit)}" if limit else ""))
    return [n for n in (t.column("name").to_pylist() if t.num_rows else []) if n]


def label_values(storage: Storage, name: str, groups: list[list[Matcher]] | None = None,
                 start_ms: int | None = None, end_ms: int | None = None,
                 limit: int | None = None, head: Head | None = None) -> list[str]:
    found = _from_head(head, groups, start_ms, end_ms)
    if found is not None:
        values = sorted({v for lb in found for k, v in lb if k == name})
        return values[:limit] if limit else values
    cond = _filter(storage, groups, start_ms, end_ms)
    col = "metric" if name == "__name__" else "labels[{n:String}]"
    t = storage.execute(f"SELECT DISTINCT {col} AS v FROM `{storage.database}`.metric_series "
                        f"WHERE ({cond}) AND v != '' ORDER BY v" + (f" LIMIT {int(limit)}" if limit else ""),
                        {"n": name} if name != "__name__" else None)
    return t.column("v").to_pylist() if t.num_rows else []


def metadata(storage: Storage, metric: str | None = None, limit: int | None = None,
             limit_per_metric: int | None = None) -> dict[str, list[dict[str, str]]]:
    where = "WHERE metric = {m:String}" if metric else ""
    t = storage.execute(f"SELECT metric, type, help, unit FROM `{storage.database}`.metric_metadata "
                        f"FINAL {where} ORDER BY metric", {"m": metric} if metric else None)
    out: dict[str, list[dict[str, str]]] = {}
    for row in t.to_pylist() if t.num_rows else []:
        if limit is not None and limit > 0 and len(out) >= limit and row["metric"] not in out:
            break
        entries = out.setdefault(row["metric"], [])
        if limit_per_metric is None or limit_per_metric <= 0 or len(entries) < limit_per_metric:
            entries.append({"type": row["type"], "help": row["help"], "unit": row["unit"]})
    return out


def tsdb_status(storage: Storage, limit: int = 10, head: Head | None = None) -> dict[str, Any]:
    """Head statistics and top-cardinality tables in Prometheus' /api/v1/status/tsdb shape:
    from the in-memory head when there is one (as Prometheus reports its head), else SQL."""
    if head is not None:
        got = head.tsdb_stats(int(limit))
        if got is not None:
            return got
    db = storage.database
    n = int(limit)
    span = storage.execute(f"SELECT count() AS c, min(ts) AS lo, max(ts) AS hi FROM `{db}`.metric_samples")
    series_n = storage.execute(f"SELECT uniqExact(series_id) AS c FROM `{db}`.metric_series")
    pairs = storage.execute(
        f"SELECT uniqExact(k, v) AS c FROM (SELECT series_id, any(labels) AS l FROM `{db}`.metric_series "
        f"GROUP BY series_id) ARRAY JOIN mapKeys(l) AS k, mapValues(l) AS v")

    def top(sql: str) -> list[dict[str, Any]]:
        t = storage.execute(sql)
        return [{"name": r["name"], "value": int(r["value"])} for r in t.to_pylist()] if t.num_rows else []

    base = f"(SELECT series_id, any(labels) AS l FROM `{db}`.metric_series GROUP BY series_id)"
    h = span.to_pylist()[0] if span.num_rows else {"c": 0, "lo": 0, "hi": 0}
    count = int(h["c"] or 0)
    return {
        "headStats": {"numSeries": int(series_n.column("c")[0].as_py() if series_n.num_rows else 0),
                      "numLabelPairs": int(pairs.column("c")[0].as_py() if pairs.num_rows else 0),
                      "chunkCount": int(np.ceil(count / 120)),
                      "minTime": int(h["lo"] or 0) if count else int(np.iinfo(np.int64).max),
                      "maxTime": int(h["hi"] or 0) if count else int(np.iinfo(np.int64).min)},
        "seriesCountByMetricName": top(
            f"SELECT l['__name__'] AS name, count() AS value FROM {base} GROUP BY name "
            f"ORDER BY value DESC, name LIMIT {n}"),
        "labelValueCountByLabelName": top(
            f"SELECT k AS name, uniqExact(v) AS value FROM {base} ARRAY JOIN mapKeys(l) AS k, "
            f"mapValues(l) AS v GROUP BY name ORDER BY value DESC, name LIMIT {n}"),
        "memoryInBytesByLabelName": top(
            f"SELECT k AS name, sum(length(v)) AS value FROM {base} ARRAY JOIN mapKeys(l) AS k, "
            f"mapValues(l) AS v GROUP BY name ORDER BY value DESC, name LIMIT {n}"),
        "seriesCountByLabelValuePair": top(
            f"SELECT concat(k, '=', v) AS name, count() AS value FROM {base} ARRAY JOIN mapKeys(l) AS k, "
            f"mapValues(l) AS v GROUP BY name ORDER BY value DESC, name LIMIT {n}"),
    }
