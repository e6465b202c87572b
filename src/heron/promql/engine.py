"""The PromQL engine: evaluates an expression over a grid of steps at once.

`Engine.instant` is a one-step grid; `Engine.range` is the whole [start, end] grid. Every node
returns a `values.Value` covering all steps, so a range query costs one storage read per
selector and array work per node, not a loop over steps.
"""

from __future__ import annotations

import threading
import time as _time
from collections.abc import Callable
from typing import Any

import numpy as np

from heron.metrics.head import Head
from heron.metrics.model import is_stale
from heron.promql import aggregations, binops, functions
from heron.promql.fetch import QueryError, Selection, select
from heron.promql.parse import ParsedQuery, ParseError, duration_ms, matcher_groups, parse_query
from heron.promql.result import Result, Sample, Series
from heron.promql.stepcache import Busy, StepCache
from heron.promql.values import Range, Scalar, String, Value, Vector, drop_name, upto
from heron.storage.base import Storage

__all__ = ["Engine", "ParseError", "QueryError", "QueryTimeout"]


class QueryTimeout(QueryError):
    """The query ran past the engine's timeout; errorType `timeout` (503)."""

    def __init__(self, message: str = "query timed out in expression evaluation") -> None:
        super().__init__(message, "timeout")


class Engine:
    """PromQL over a Heron storage database.

    `lookback` (seconds) is how far back an instant selector looks for a sample; `max_samples`
    caps the samples one query may load (Prometheus' --query.max-samples); `timeout` (seconds)
    bounds one evaluation; `subquery_step` is the step of `[5m:]` subqueries (seconds);
    `pushdown` lets ClickHouse compute rate/increase/delta/irate/idelta of plain selectors;
    `head` (heron.metrics.head) answers the ranges it covers from memory, without SQL;
    `step_cache_mb` bounds the cache of range-function results per window end that range
    queries over the head share (heron.promql.stepcache; 0 turns it off).
    """

    def __init__(self, storage: Storage, lookback: float = 300.0, max_samples: int = 50_000_000,
                 timeout: float = 120.0, subquery_step: float = 60.0, pushdown: bool = True,
                 head: Head | None = None, step_cache_mb: float = 128) -> None:
        self.storage = storage
        self.head = head
        self.pushdown = pushdown  # rate & co. through ClickHouse's timeSeries*ToGrid (pushdown.py)
        self.lookback_ms = int(lookback * 1000)
        self.max_samples = max_samples
        self.timeout = timeout
        self.subquery_step_ms = int(subquery_step * 1000)
        self.step_cache = StepCache(int(step_cache_mb * (1 << 20))) if head is not None and step_cache_mb > 0 \
            else None

    def parse(self, expr: str) -> ParsedQuery:
        return parse_query(expr)

    def instant(self, expr: str, time: float, timeout: float | None = None) -> Result:
        """Evaluate `expr` at `time` (seconds since the epoch)."""
        t = _ms(time)
        ev = _Evaluation(self, parse_query(expr), t, t, 0, timeout)
        with np.errstate(all="ignore"):  # NaN/Inf arithmetic is PromQL semantics, not an error
            return ev.instant_result()

    def range(self, expr: str, start: float, end: float, step: float,
              timeout: float | None = None) -> Result:
        """Evaluate `expr` at start, start+step, ... <= end (seconds); a matrix result."""
        s, e, st = _ms(start), _ms(end), _ms(step)
        if st <= 0:
            raise QueryError("zero or negative query resolution step widths are not accepted. "
                             "Try a positive integer", "bad_data")
        if e < s:
            raise QueryError("end timestamp must not be before start time", "bad_data")
        ev = _Evaluation(self, parse_query(expr), s, e, st, timeout)
        with np.errstate(all="ignore"):
            return ev.range_result()


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class _Evaluation:
    """State of one query: the grid, the deadline, and a cache of storage selections."""

    def __init__(self, engine: Engine, query: ParsedQuery, start: int, end: int, step: int,
                 timeout: float | None = None) -> None:
        self.engine = engine
        self.query = query
        self.start, self.end, self.step = start, end, step
        self.grid = np.arange(start, end + 1, step, dtype=np.int64) if step else np.array([start])
        self.deadline = _time.monotonic() + min(timeout or engine.timeout, engine.timeout)
        self.samples_loaded = 0
        self._cache: dict[str, Selection] = {}
        self.warnings: list[str] = []  # Prometheus annotations, rendered without positions
        self.infos: list[str] = []
        self._lock = threading.Lock()

    # --- results ---------------------------------------------------------------------------

    def warn(self, text: str) -> None:
        msg = "PromQL warning: " + text
        if msg not in self.warnings:
            self.warnings.append(msg)

    def info(self, text: str) -> None:
        msg = "PromQL info: " + text
        if msg not in self.infos:
            self.infos.append(msg)

    def instant_result(self) -> Result:
        res = self._instant_result()
        res.warnings, res.infos = self.warnings, self.infos
        return res

    def range_result(self) -> Result:
        res = self._range_result()
        res.warnings, res.infos = self.warnings, self.infos
        return res

    def _instant_result(self) -> Result:
        root = self.query.root
        value = self.eval(root, self.grid)
        t = self.start / 1000.0
        if isinstance(value, Scalar):
            return Result("scalar", scalar=(t, float(value.values[0])))
        if isinstance(value, String):
            return Result("string", string=(t, value.value))
        if isinstance(value, Range):
            return Result("matrix", matrix=self._range_series(value))
        v = self.finish(value)
        out = [Sample(dict(v.labels[i]), t, float(v.values[i, 0]))
               for i in range(len(v.labels)) if v.present[i, 0]]
        return Result("vector", vector=out, ordered=v.ordered)

    def _range_result(self) -> Result:
        root = self.query.root
        value = self.eval(root, self.grid)
        if isinstance(value, Range | String):
            kind = "range vector" if isinstance(value, Range) else "string"
            raise QueryError(f'invalid expression type "{kind}" for range query, must be Scalar or '
                             "instant Vector", "bad_data")
        if isinstance(value, Scalar):
            value = Vector([()], value.values[None, :], np.ones((1, len(self.grid)), bool))
        v = self.finish(value)
        grid = self.grid
        dense = np.asarray(v.present.all(axis=1))
        series = []
        for i in sorted(range(len(v.labels)), key=v.labels.__getitem__):
            if dense[i]:
                series.append(Series(dict(v.labels[i]), times_ms=grid, values=v.values[i]))
                continue
            cols = np.nonzero(v.present[i])[0]
            if len(cols):
                series.append(Series(dict(v.labels[i]), times_ms=grid[cols], values=v.values[i, cols]))
        return Result("matrix", matrix=series, grid_ms=grid)

    def finish(self, v: Vector) -> Vector:
        v = v.compact()
        binops.check_unique(v, "vector cannot contain metrics with the same labelset")
        return binops.merge_duplicates(v)

    def _range_series(self, r: Range) -> list[Series]:
        lo, hi = r.windows()
        out = []
        for i, lb in enumerate(r.sel.labels):
            a, b = int(lo[i, 0]), int(hi[i, 0])
            if b > a:
                lbl = drop_name(lb) if r.drop_name else lb
                out.append(Series(dict(lbl), times_ms=r.sel.ts[a:b], values=r.sel.values[a:b]))
        return out

    # --- dispatch --------------------------------------------------------------------------

    def check_deadline(self) -> None:
        if _time.monotonic() > self.deadline:
            raise QueryTimeout()

    def eval(self, node: Any, grid: np.ndarray) -> Value:
        self.check_deadline()
        kind = type(node).__name__
        handler: Callable[[Any, np.ndarray], Value] = getattr(self, "_eval_" + kind)
        return handler(node, grid)

    def _eval_ParenExpr(self, node: Any, grid: np.ndarray) -> Value:
        return self.eval(node.expr, grid)

    def _eval_NumberLiteral(self, node: Any, grid: np.ndarray) -> Value:
        return Scalar(np.full(len(grid), float(node.val)))

    def _eval_StringLiteral(self, node: Any, grid: np.ndarray) -> Value:
        return String(node.val)

    def _eval_UnaryExpr(self, node: Any, grid: np.ndarray) -> Value:
        v = self.eval(node.expr, grid)
        if isinstance(v, Scalar):
            return Scalar(-v.values)
        assert isinstance(v, Vector)
        return Vector([drop_name(lb) for lb in v.labels], -v.values, v.present)

    def _eval_BinaryExpr(self, node: Any, grid: np.ndarray) -> Value:
        return binops.evaluate(self, node, grid)

    def _eval_AggregateExpr(self, node: Any, grid: np.ndarray) -> Value:
        return aggregations.evaluate(self, node, grid)

    def _eval_Call(self, node: Any, grid: np.ndarray) -> Value:
        return functions.evaluate(self, node, grid)

    # --- selectors -------------------------------------------------------------------------

    def times(self, at: Any, offset: Any, grid: np.ndarray) -> np.ndarray:
        """Per-step evaluation times of a node with `@` and `offset` applied."""
        at_ms = self.query.at_ms(at)
        if at_ms == "start":
            base = np.full(len(grid), self.start, np.int64)
        elif at_ms == "end":
            base = np.full(len(grid), self.end, np.int64)
        elif at_ms is not None:
            base = np.full(len(grid), int(at_ms), np.int64)
        else:
            base = grid
        return base - duration_ms(offset)

    def selection(self, vs: Any, mint: int, maxt: int) -> Selection:
        groups = matcher_groups(vs)
        key = repr(groups)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.mint <= mint and cached.maxt >= maxt:
            return cached
        if cached is not None:
            mint, maxt = min(mint, cached.mint), max(maxt, cached.maxt)
        budget = self.engine.max_samples - self.samples_loaded
        sel = select(self.engine.storage, groups, mint, maxt, max(budget, 0), self.engine.head)
        self.samples_loaded += len(sel.ts)
        with self._lock:
            self._cache[key] = sel
        return sel

    def cached_range_function(self, name: str, node: Any, grid: np.ndarray,
                              fn: Callable[[Range], tuple[np.ndarray, np.ndarray]]) -> Vector | None:
        """`name(node)` for a range query over the head, through the engine's step cache; None
        when it does not apply (instant query, `@`, a range the head does not cover)."""
        cache, head = self.engine.step_cache, self.engine.head
        if cache is None or head is None or not self.step or type(node).__name__ != "MatrixSelector":
            return None
        vs = node.vector_selector
        if vs.at is not None:
            return None
        offset = duration_ms(vs.offset)
        t = grid - offset
        rng = duration_ms(node.range)
        if not head.covers(int(t[0]) - rng, int(t[-1])):
            return None

        def evaluate(ends: np.ndarray) -> tuple[list[Any], np.ndarray, np.ndarray]:
            sel = self.selection(vs, int(ends[0]) - rng, int(ends[-1]))
            sel = sel.without(is_stale(sel.values))
            vals, pres = fn(Range(sel, ends, rng, steps=ends + offset))
            return list(sel.labels), vals, pres

        try:
            labels, vals, pres = cache.get((name, repr(matcher_groups(vs)), rng), head, t, evaluate,
                                           self.deadline, relabel=drop_name)
        except Busy:
            raise QueryTimeout() from None
        return Vector(labels, np.where(pres, vals, np.nan), pres).compact()

    def _eval_VectorSelector(self, node: Any, grid: np.ndarray) -> Value:
        t = self.times(node.at, node.offset, grid)
        lookback = self.engine.lookback_ms
        sel = self.selection(node, int(t.min()) - lookback, int(t.max()))
        n = len(sel.labels)
        if n == 0:
            return Vector.empty(len(grid))
        idx = upto(sel, t) - 1
        starts = sel.starts[:-1][:, None]
        ok = idx >= starts
        idx = np.where(ok, idx, 0)
        if len(sel.ts) == 0:
            return Vector.empty(len(grid))
        ts = sel.ts[idx]
        vals = sel.values[idx]
        ok &= ts > (t[None, :] - lookback)
        ok &= ~is_stale(vals)
        return Vector(list(sel.labels), np.where(ok, vals, np.nan), ok).compact()

    def _eval_MatrixSelector(self, node: Any, grid: np.ndarray) -> Value:
        vs = node.vector_selector
        t = self.times(vs.at, vs.offset, grid)
        rng = duration_ms(node.range)
        sel = self.selection(vs, int(t.min()) - rng, int(t.max()))
        sel = sel.without(is_stale(sel.values))
        return Range(sel, t, rng, steps=grid)

    def _eval_SubqueryExpr(self, node: Any, grid: np.ndarray) -> Value:
        t = self.times(node.at, node.offset, grid)
        rng = duration_ms(node.range)
        step = duration_ms(node.step) or self.engine.subquery_step_ms
        lo = int(t.min()) - rng
        first = _go_div(lo, step) * step
        if first <= lo:
            first += step
        inner_grid = np.arange(first, int(t.max()) + 1, step, dtype=np.int64)
        if len(inner_grid) == 0:
            inner_grid = np.array([first], np.int64)
        inner = self.eval(node.expr, inner_grid)
        if isinstance(inner, Scalar):
            inner = Vector([()], inner.values[None, :], np.ones((1, len(inner_grid)), bool))
        if not isinstance(inner, Vector):
            raise QueryError("subquery is only allowed on instant vector", "bad_data")
        rows, cols = np.nonzero(inner.present)
        counts = np.bincount(rows, minlength=len(inner.labels))
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        sel = Selection(list(inner.labels), inner_grid[cols], inner.values[rows, cols], starts,
                        min(int(inner_grid[0]), lo), int(inner_grid[-1]))
        return Range(sel, t, rng, steps=grid)


def _go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q

