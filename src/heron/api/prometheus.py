"""Prometheus' HTTP query API (/api/v1/...): the same JSON shapes, error types and status codes.

Grafana's Prometheus data source, `promtool query` and scripts written against Prometheus talk to
these routes unchanged. Handlers parse parameters, run the engine in a worker thread (chDB
releases the GIL) and shape the reply; everything PromQL lives in heron.promql.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import platform
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from heron import __version__
from heron.api import heron_of, prom_error, requires
from heron.exceptions import StorageError
from heron.promql import ParseError, QueryError, QueryTimeout, Result, catalog
from heron.promql.encode import query_body
from heron.server import Heron

MAX_POINTS = 11_000
_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "canceled": 499, "internal": 500,
           "unavailable": 503, "not_found": 404}
_DUR = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_STARTED = time.time()
log = logging.getLogger("heron.api.prometheus")


class ApiError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def success(data: Any, warnings: list[str] | None = None, infos: list[str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    if infos:
        body["infos"] = infos
    return JSONResponse(body)


def parse_time(value: str, name: str) -> float:
    """Unix seconds (float) or RFC 3339, as Prometheus' parseTime."""
    try:
        f = float(value)
        if math.isfinite(f):
            return f
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    except ValueError:
        raise ApiError("bad_data", f'invalid parameter "{name}": cannot parse "{value}" to a valid timestamp'
                       ) from None


def parse_duration(value: str, name: str) -> float:
    try:
        f = float(value)
        if math.isfinite(f):
            return f
    except ValueError:
        pass
    m = _DUR.match(value)
    if value and m and any(m.groups()):
        y, w, d, h, mi, s, ms = (int(g or 0) for g in m.groups())
        return ((((y * 365 + w * 7 + d) * 24 + h) * 60 + mi) * 60 + s) + ms / 1000.0
    raise ApiError("bad_data", f'invalid parameter "{name}": cannot parse "{value}" to a valid duration')


async def params(request: Request) -> dict[str, list[str]]:
    """Query string merged with a urlencoded POST body (Prometheus accepts both)."""
    multi: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        multi.setdefault(k, []).append(v)
    if request.method == "POST":
        form = await request.form()
        for k, fv in form.multi_items():
            if isinstance(fv, str):
                multi.setdefault(k, []).append(fv)
    return multi


def _one(p: Any, name: str) -> str | None:
    vs = p.get(name)
    return vs[0] if vs else None


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        return prom_error(_STATUS.get(exc.kind, 400), exc.kind, str(exc))
    if isinstance(exc, ParseError):
        return prom_error(400, "bad_data", f"invalid parameter \"query\": {exc}")
    if isinstance(exc, QueryTimeout):
        return prom_error(503, "timeout", str(exc))
    if isinstance(exc, QueryError):
        return prom_error(_STATUS.get(exc.kind, 422), exc.kind, str(exc))
    if isinstance(exc, StorageError):
        return prom_error(500, "internal", "storage error: " + str(exc).splitlines()[0])
    log.exception("query failed")
    return prom_error(500, "internal", f"internal error: {type(exc).__name__}")


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _limit(p: Any) -> int | None:
    raw = _one(p, "limit")
    if raw in (None, ""):
        return None
    try:
        n = int(raw)
    except ValueError:
        raise ApiError("bad_data", f'invalid parameter "limit": cannot parse "{raw}" to a valid limit') from None
    if n < 0:
        raise ApiError("bad_data", 'invalid parameter "limit": limit must be non-negative')
    return n or None


def _timeout(p: Any) -> float | None:
    raw = _one(p, "timeout")
    return parse_duration(raw, "timeout") if raw else None


def _reply(res: Result, limit: int | None = None) -> Response:
    return Response(query_body(res, limit, res.grid_ms), media_type="application/json")


@requires("api", reply="prometheus")
async def query(request: Request) -> Response:
    heron = heron_of(request)
    try:
        p = await params(request)
        expr = _query(p)
        raw_t = _one(p, "time")
        t = parse_time(raw_t, "time") if raw_t else time.time()
        res = await _run(heron.query_engine.instant, expr, t, _timeout(p))
        return _reply(res, _limit(p))
    except Exception as exc:
        return _error(exc)


@requires("api", reply="prometheus")
async def query_range(request: Request) -> Response:
    heron = heron_of(request)
    try:
        p = await params(request)
        start = parse_time(_one(p, "start") or "", "start")
        end = parse_time(_one(p, "end") or "", "end")
        if end < start:
            raise ApiError("bad_data", 'invalid parameter "end": end timestamp must not be before start time')
        step = parse_duration(_one(p, "step") or "", "step")
        if step <= 0:
            raise ApiError("bad_data", 'invalid parameter "step": zero or negative query resolution step '
                           "widths are not accepted. Try a positive integer")
        if (end - start) / step > MAX_POINTS:
            raise ApiError("bad_data", "exceeded maximum resolution of 11,000 points per timeseries. "
                           "Try decreasing the query resolution (?step=XX)")
        expr = _query(p)
        res = await _run(heron.query_engine.range, expr, start, end, step, _timeout(p))
        return _reply(res, _limit(p))
    except Exception as exc:
        return _error(exc)


def _query(p: Any) -> str:
    expr = _one(p, "query")
    if not expr:
        raise ApiError("bad_data", 'invalid parameter "query": unknown position: parse error: no expression found in input')
    return expr


def _range_ms(p: Any) -> tuple[int | None, int | None]:
    s, e = _one(p, "start"), _one(p, "end")
    start = round(parse_time(s, "start") * 1000) if s else None
    end = round(parse_time(e, "end") * 1000) if e else None
    return start, end


def _matchers(p: Any) -> list[Any] | None:
    sels = p.get("match[]") or []
    return catalog.selector_groups(sels) if sels else None


@requires("api", reply="prometheus")
async def series(request: Request) -> Response:
    heron = heron_of(request)
    try:
        p = await params(request)
        groups = _matchers(p)
        if not groups:
            raise ApiError("bad_data", "no match[] parameter provided")
        start, end = _range_ms(p)
        out = await _run(catalog.series, heron.storage, groups, start, end, _limit(p), heron.head)
        return success(out)
    except Exception as exc:
        return _error(exc)


@requires("api", reply="prometheus")
async def labels(request: Request) -> Response:
    heron = heron_of(request)
    try:
        p = await params(request)
        start, end = _range_ms(p)
        out = await _run(catalog.label_names, heron.storage, _matchers(p), start, end, _limit(p),
                          heron.head)
        return success(out)
    except Exception as exc:
        return _error(exc)


@requires("api", reply="prometheus")
async def label_values(request: Request) -> Response:
    heron = heron_of(request)
    name = request.path_params["name"]
    if name.startswith("U__"):  # Prometheus 3 escaping of UTF-8 label names
        name = _unescape(name[3:])
    try:
        p = await params(request)
        start, end = _range_ms(p)
        out = await _run(catalog.label_values, heron.storage, name, _matchers(p), start, end, _limit(p),
                          heron.head)
        return success(out)
    except Exception as exc:
        return _error(exc)


def _unescape(name: str) -> str:
    def rep(m: re.Match[str]) -> str:
        return chr(int(m.group(1), 16))
    return re.sub(r"_([0-9a-fA-F]+)_", rep, name).replace("__", "_")


@requires("api", reply="prometheus")
async def metadata(request: Request) -> Response:
    heron = heron_of(request)
    try:
        p = await params(request)
        lpm = _one(p, "limit_per_metric")
        out = await _run(catalog.metadata, heron.storage, _one(p, "metric"), _limit(p),
                         int(lpm) if lpm else None)
        return success(out)
    except Exception as exc:
        return _error(exc)


@requires("api", reply="prometheus")
async def query_exemplars(request: Request) -> Response:
    heron = heron_of(request)
    try:
        p = await params(request)
        expr = _one(p, "query")
        if not expr:
            raise ApiError("bad_data", 'invalid parameter "query": no expression found in input')
        start, end = _range_ms(p)
        start, end = -(2**62) if start is None else start, 2**62 if end is None else end
        if end < start:
            raise ApiError("bad_data", "end timestamp must not be before start time")
        from heron.metrics import exemplars

        return success(await _run(exemplars.query, heron.storage, expr, start, end))
    except Exception as exc:
        return _error(exc)


@requires("api", reply="prometheus")
async def format_query(request: Request) -> Response:
    try:
        p = await params(request)
        expr = _one(p, "query") or ""
        from heron.promql.parse import ParsedQuery

        return success(ParsedQuery(expr).root.prettify())
    except Exception as exc:
        return _error(exc)


@requires("api", reply="prometheus")
async def buildinfo(request: Request) -> Response:
    return success({"version": __version__, "revision": "", "branch": "", "buildUser": "heron",
                    "buildDate": "", "goVersion": "python" + platform.python_version()})


@requires("api", reply="prometheus")
async def runtimeinfo(request: Request) -> Response:
    heron = heron_of(request)
    return success({
        "startTime": dt.datetime.fromtimestamp(_STARTED, dt.UTC).isoformat().replace("+00:00", "Z"),
        "CWD": os.getcwd(), "reloadConfigSuccess": True,
        "lastConfigTime": dt.datetime.fromtimestamp(_STARTED, dt.UTC).isoformat().replace("+00:00", "Z"),
        "corruptionCount": 0, "goroutineCount": 0, "GOMAXPROCS": os.cpu_count() or 1, "GOMEMLIMIT": 0,
        "GOGC": "", "GODEBUG": "", "storageRetention": heron.config.retention.metrics})


@requires("api", reply="prometheus")
async def flags(request: Request) -> Response:
    heron = heron_of(request)
    eng = heron.query_engine
    return success({
        "query.lookback-delta": f"{eng.lookback_ms // 1000}s",
        "query.max-samples": str(eng.max_samples),
        "query.timeout": f"{int(eng.timeout)}s",
        "storage.tsdb.retention.time": heron.config.retention.metrics,
        "web.listen-address": heron.config.server.listen,
    })


@requires("api", reply="prometheus")
async def tsdb(request: Request) -> Response:
    heron = heron_of(request)
    try:
        p = await params(request)
        limit = _limit(p) or 10
        return success(await _run(catalog.tsdb_status, heron.storage, limit, heron.head))
    except Exception as exc:
        return _error(exc)


def routes(heron: Heron) -> list[BaseRoute]:
    both = ["GET", "POST"]
    return [
        Route("/api/v1/query", query, methods=both),
        Route("/api/v1/query_range", query_range, methods=both),
        Route("/api/v1/series", series, methods=both),
        Route("/api/v1/labels", labels, methods=both),
        Route("/api/v1/label/{name}/values", label_values, methods=["GET"]),
        Route("/api/v1/metadata", metadata, methods=["GET"]),
        Route("/api/v1/query_exemplars", query_exemplars, methods=both),
        Route("/api/v1/format_query", format_query, methods=both),
        Route("/api/v1/status/buildinfo", buildinfo, methods=["GET"]),
        Route("/api/v1/status/runtimeinfo", runtimeinfo, methods=["GET"]),
        Route("/api/v1/status/flags", flags, methods=["GET"]),
        Route("/api/v1/status/tsdb", tsdb, methods=["GET"]),
    ]
