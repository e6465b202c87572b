"""PromQL functions on floats: math, time, label manipulation, range-vector functions, histograms.

Each function takes evaluated arguments covering every step and returns a Vector or Scalar for
every step; range-vector functions delegate window work to `windows`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from heron.metrics.model import Labels
from heron.promql import pushdown
from heron.promql import windows as W
from heron.promql.fetch import QueryError
from heron.promql.parse import matcher_groups
from heron.promql.values import Range, Scalar, String, Vector, drop_name, get, with_label

if TYPE_CHECKING:
    from heron.promql.engine import _Evaluation


def _np1(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def g(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return f(x)
    return g


def _sgn(x: np.ndarray) -> np.ndarray:
    return np.sign(x)


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": _np1(np.abs), "ceil": _np1(np.ceil), "floor": _np1(np.floor), "exp": _np1(np.exp),
    "sqrt": _np1(np.sqrt), "ln": _np1(np.log), "log2": _np1(np.log2), "log10": _np1(np.log10),
    "sgn": _np1(_sgn), "acos": _np1(np.arccos), "acosh": _np1(np.arccosh), "asin": _np1(np.arcsin),
    "asinh": _np1(np.arcsinh), "atan": _np1(np.arctan), "atanh": _np1(np.arctanh),
    "cos": _np1(np.cos), "cosh": _np1(np.cosh), "sin": _np1(np.sin), "sinh": _np1(np.sinh),
    "tan": _np1(np.tan), "tanh": _np1(np.tanh), "deg": _np1(np.degrees), "rad": _np1(np.radians),
}

RANGE_SIMPLE: dict[str, W.Reducer] = {
    "sum_over_time": W.r_sum, "avg_over_time": W.r_avg, "min_over_time": W.r_min,
    "max_over_time": W.r_max, "stddev_over_time": W.r_stddev, "stdvar_over_time": W.r_stdvar,
    "changes": W.r_changes, "resets": W.r_resets, "mad_over_time": W.r_mad,
    "ts_of_last_over_time": W.ts_reducer("last"), "ts_of_first_over_time": W.ts_reducer("first"),
    "ts_of_min_over_time": W.ts_reducer("min"), "ts_of_max_over_time": W.ts_reducer("max"),
    "first_over_time": lambda t, v, mask, n, end: v[:, 0],
}

# Range functions whose value at a step reads only that step's window (heron.promql.stepcache).
CACHED: dict[str, Callable[[Range], tuple[np.ndarray, np.ndarray]]] = {
    "rate": lambda r: W.extrapolated(r, is_counter=True, is_rate=True),
    "increase": lambda r: W.extrapolated(r, is_counter=True, is_rate=False),
    "delta": lambda r: W.extrapolated(r, is_counter=False, is_rate=False),
    "irate": lambda r: W.instant_delta(r, is_rate=True),
    "idelta": lambda r: W.instant_delta(r, is_rate=False),
}

TIME_FUNCS = {"day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute",
              "month", "year"}


def evaluate(ev: _Evaluation, node: Any, grid: np.ndarray) -> Any:
    name = node.func.name
    arg_nodes = list(node.args)
    steps = len(grid)
    if name == "time":
        return Scalar(grid / 1000.0)
    if name == "pi":
        return Scalar(np.full(steps, np.pi))
    if name in ("start", "end", "range", "step"):
        val = {"start": ev.start / 1000.0, "end": ev.end / 1000.0,
               "range": (ev.end - ev.start) / 1000.0, "step": ev.step / 1000.0}[name]
        return Scalar(np.full(steps, val))
    if name in ("absent", "absent_over_time"):
        return _absent(ev, name, arg_nodes[0], grid)
    if len(arg_nodes) == 1:
        pushed = pushdown.range_function(ev, name, arg_nodes[0], grid)
        if pushed is not None:
            return pushed
        if name in CACHED:
            cached = ev.cached_range_function(name, arg_nodes[0], grid, CACHED[name])
            if cached is not None:
                return cached
    args = [ev.eval(a, grid) for a in arg_nodes]
    if name in MATH:
        v = _vec(args[0])
        return Vector([drop_name(lb) for lb in v.labels], MATH[name](v.values), v.present)
    if name in ("min_over_time", "max_over_time"):
        r = _rng(args[0])
        vals, pres = W.minmax(r, name[:3])
        return _from_range(r, vals, pres, keep_name=False)
    if name in ("sum_over_time", "avg_over_time"):
        r = _rng(args[0])
        fast = W.sums(r, name[:3])
        if fast is not None:
            return _from_range(r, fast[0], fast[1], keep_name=False)
    if name in RANGE_SIMPLE:
        r = _rng(args[0])
        vals, pres = W.gather(r, RANGE_SIMPLE[name])
        return _from_range(r, vals, pres, keep_name=False)
    if name in ("rate", "increase", "delta"):
        r = _rng(args[0])
        vals, pres = W.extrapolated(r, is_counter=name != "delta", is_rate=name == "rate")
        return _from_range(r, vals, pres, keep_name=False, nan_absent=True)
    if name in ("irate", "idelta"):
        r = _rng(args[0])
        vals, pres = W.instant_delta(r, is_rate=name == "irate")
        return _from_range(r, vals, pres, keep_name=False, nan_absent=True)
    if name == "count_over_time":
        r = _rng(args[0])
        vals, pres = W.count(r)
        return _from_range(r, vals, pres, keep_name=False)
    if name == "present_over_time":
        r = _rng(args[0])
        vals, pres = W.count(r)
        return _from_range(r, np.ones_like(vals), pres, keep_name=False)
    if name == "last_over_time":
        r = _rng(args[0])
        vals, pres = W.last(r)
        return _from_range(r, vals, pres, keep_name=True)
    if name == "deriv":
        r = _rng(args[0])
        vals, pres = W.gather(r, W.r_deriv, min_samples=2)
        return _from_range(r, vals, pres, keep_name=False)
    if name == "predict_linear":
        r = _rng(args[0])
        dur = _scalar(args[1])
        vals, pres = _gather_param(r, dur, W.make_predict_linear, min_samples=2)
        return _from_range(r, vals, pres, keep_name=False)
    if name == "quantile_over_time":
        q = _scalar(args[0])
        check_quantile(ev, q, ev.query.position(name, 0))
        r = _rng(args[1])
        vals, pres = _gather_param(r, q, W.make_quantile)
        return _from_range(r, vals, pres, keep_name=False)
    if name in ("holt_winters", "double_exponential_smoothing"):
        r = _rng(args[0])
        sf, tf = _scalar(args[1]), _scalar(args[2])
        if not (0 < sf[0] < 1):
            raise QueryError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf[0]:g}")
        if not (0 < tf[0] < 1):
            raise QueryError(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf[0]:g}")
        vals, pres = W.gather(r, W.make_holt_winters(float(sf[0]), float(tf[0])), min_samples=2)
        return _from_range(r, vals, pres, keep_name=False)
    if name == "timestamp":
        return _timestamp(ev, arg_nodes[0], grid)
    if name == "vector":
        s = _scalar(args[0])
        return Vector([()], s[None, :].copy(), np.ones((1, steps), bool))
    if name == "scalar":
        v = _vec(args[0])
        cnt = v.present.sum(axis=0)
        vals = np.where(cnt == 1, np.where(v.present, v.values, 0).sum(axis=0) if len(v.labels)
                        else np.nan, np.nan)
        return Scalar(np.asarray(vals, np.float64))
    if name in ("clamp", "clamp_min", "clamp_max"):
        v = _vec(args[0])
        with np.errstate(invalid="ignore"):
            if name == "clamp":
                lo, hi = _scalar(args[1])[None, :], _scalar(args[2])[None, :]
                vals = np.fmax(np.fmin(v.values, hi), lo)
                vals = np.where(np.isnan(v.values), np.nan, vals)
                pres = v.present & ~(lo > hi)
            elif name == "clamp_min":
                lo = _scalar(args[1])[None, :]
                vals = np.where(np.isnan(lo), np.nan, np.where(np.isnan(v.values), np.nan,
                                                              np.maximum(v.values, lo)))
                pres = v.present
            else:
                hi = _scalar(args[1])[None, :]
                vals = np.where(np.isnan(hi), np.nan, np.where(np.isnan(v.values), np.nan,
                                                              np.minimum(v.values, hi)))
                pres = v.present
        return Vector([drop_name(lb) for lb in v.labels], vals, pres).compact()
    if name == "round":
        v = _vec(args[0])
        to = _scalar(args[1])[None, :] if len(args) > 1 else np.ones((1, steps))
        with np.errstate(all="ignore"):
            inv = 1.0 / to
            vals = np.floor(v.values * inv + 0.5) / inv
        return Vector([drop_name(lb) for lb in v.labels], vals, v.present)
    if name in TIME_FUNCS:
        v = _vec(args[0]) if args else Vector([()], (grid / 1000.0)[None, :], np.ones((1, steps), bool))
        return Vector([drop_name(lb) for lb in v.labels], _time_part(name, v.values), v.present)
    if name in ("sort", "sort_desc", "sort_by_label", "sort_by_label_desc") and ev.step:
        ev.warn("sort is ineffective for range queries since results are always ordered by labels"
                + ev.query.position(name))
    if name in ("sort", "sort_desc"):
        v = _vec(args[0])
        if steps == 1:
            key = v.values[:, 0]
            nan = np.isnan(key)
            order = np.lexsort((-key if name == "sort_desc" else key, nan))
            out = v.take(order)
            out.ordered = True
            return out
        return v
    if name in ("sort_by_label", "sort_by_label_desc"):
        v = _vec(args[0])
        names = [_string(a) for a in args[1:]]
        by_label = sorted(range(len(v.labels)),
                          key=lambda i: ([_natural(get(v.labels[i], n)) for n in names], v.labels[i]),
                          reverse=name.endswith("desc"))
        out = v.take(np.array(by_label, dtype=np.int64))
        out.ordered = True
        return out
    if name == "label_replace":
        return _label_replace(_vec(args[0]), *[_string(a) for a in args[1:5]])
    if name == "label_join":
        v = _vec(args[0])
        dst, sep = _string(args[1]), _string(args[2])
        srcs = [_string(a) for a in args[3:]]
        _check_label_name(dst)
        labels = [with_label(lb, dst, sep.join(get(lb, s) for s in srcs)) for lb in v.labels]
        return Vector(labels, v.values, v.present)
    if name == "histogram_quantile":
        check_quantile(ev, _scalar(args[0]), ev.query.position(name, 0))
        return _histogram_quantile(ev, _scalar(args[0]), _vec(args[1]), ev.query.position(name, 1))
    if name == "histogram_fraction":
        return _histogram_fraction(ev, _scalar(args[0]), _scalar(args[1]), _vec(args[2]),
                                   ev.query.position(name, 2))
    raise QueryError(f"function {name!r} is not supported", "bad_data")


# --- helpers ---------------------------------------------------------------------------------

def go_g(x: float) -> str:
    """Go's %g for the floats annotations print."""
    if np.isnan(x):
        return "NaN"
    if np.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return f"{x:.17g}" if x != float(f"{x:g}") else f"{x:g}"


def check_quantile(ev: _Evaluation, q: np.ndarray, pos: str = "") -> None:
    for x in np.unique(q):
        if np.isnan(x) or x < 0 or x > 1:
            ev.warn(f"quantile value should be between 0 and 1, got {go_g(float(x))}{pos}")

def _vec(v: Any) -> Vector:
    if not isinstance(v, Vector):
        raise QueryError("expected instant vector", "bad_data")
    return v


def _rng(v: Any) -> Range:
    if not isinstance(v, Range):
        raise QueryError("expected range vector", "bad_data")
    return v


def _scalar(v: Any) -> np.ndarray:
    if not isinstance(v, Scalar):
        raise QueryError("expected scalar", "bad_data")
    return v.values


def _string(v: Any) -> str:
    if not isinstance(v, String):
        raise QueryError("expected string", "bad_data")
    return v.value


def _from_range(r: Range, vals: np.ndarray, pres: np.ndarray, keep_name: bool, nan_absent: bool = False
                ) -> Vector:
    """`nan_absent`: `vals` is already NaN wherever `pres` is false (no full-matrix copy then)."""
    labels = list(r.sel.labels) if keep_name else [drop_name(lb) for lb in r.sel.labels]
    return Vector(labels, vals if nan_absent else np.where(pres, vals, np.nan), pres).compact()


def _gather_param(r: Range, p: np.ndarray, make: Callable[..., W.Reducer],
                  min_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Range function with a scalar parameter; one pass when the parameter is constant."""
    if len(p) == 0 or np.all(p == p[0]) or np.all(np.isnan(p)):
        return W.gather(r, make(float(p[0])) if len(p) else make(np.nan), min_samples)
    vals = np.full((len(r.sel.labels), len(r.ends)), np.nan)
    pres = np.zeros_like(vals, bool)
    for s in range(len(r.ends)):
        sub = Range(r.sel, r.ends[s:s + 1], r.range_ms)
        v, pr = W.gather(sub, make(float(p[s])), min_samples)
        vals[:, s], pres[:, s] = v[:, 0], pr[:, 0]
    return vals, pres


def _timestamp(ev: _Evaluation, node: Any, grid: np.ndarray) -> Vector:
    inner = node
    while type(inner).__name__ == "ParenExpr":
        inner = inner.expr
    v = _vec(ev.eval(node, grid))
    if type(inner).__name__ == "VectorSelector":
        # timestamp() of a selector is the sample's own time, not the step.
        t = ev.times(inner.at, inner.offset, grid)
        sel = ev.selection(inner, int(t.min()) - ev.engine.lookback_ms, int(t.max()))
        pos = {lb: i for i, lb in enumerate(sel.labels)}
        rows = np.array([pos[lb] for lb in v.labels], dtype=np.int64)
        keys = sel.keys()
        sub_keys = (rows[:, None] << 42) + (t[None, :] - sel.base)
        idx = np.clip(np.searchsorted(keys, sub_keys, "right") - 1, 0, max(len(sel.ts) - 1, 0))
        vals = sel.ts[idx] / 1000.0 if len(sel.ts) else np.full(v.values.shape, np.nan)
        return Vector([drop_name(lb) for lb in v.labels], vals, v.present)
    return Vector([drop_name(lb) for lb in v.labels], np.broadcast_to(grid / 1000.0, v.values.shape).copy(),
                  v.present)


def _absent(ev: _Evaluation, name: str, node: Any, grid: np.ndarray) -> Vector:
    v = ev.eval(node, grid)
    steps = len(grid)
    if isinstance(v, Range):
        lo, hi = v.windows()
        any_present = (hi > lo).any(axis=0) if len(v.sel.labels) else np.zeros(steps, bool)
        sel_node = node.vector_selector if type(node).__name__ == "MatrixSelector" else None
    else:
        vec = _vec(v)
        any_present = vec.present.any(axis=0) if len(vec.labels) else np.zeros(steps, bool)
        sel_node = node if type(node).__name__ == "VectorSelector" else None
    labels: Labels = ()
    if sel_node is not None:
        groups = matcher_groups(sel_node)
        if len(groups) == 1:
            d: dict[str, str] = {}
            seen: dict[str, int] = {}
            for m in groups[0]:
                seen[m.name] = seen.get(m.name, 0) + 1
                if m.op == "=" and m.name != "__name__":
                    d[m.name] = m.value
            for k, c in seen.items():
                if c > 1:  # several matchers on one label: Prometheus can't tell its value
                    d.pop(k, None)
            labels = tuple(sorted(d.items()))
    pres = ~np.asarray(any_present, bool)
    return Vector([labels], np.ones((1, steps)), pres[None, :]).compact()


def _time_part(name: str, secs: np.ndarray) -> np.ndarray:
    out = np.full(secs.shape, np.nan)
    ok = np.isfinite(secs)
    if not ok.any():
        return out
    dts = np.floor(secs[ok]).astype("int64").astype("datetime64[s]")
    years = dts.astype("datetime64[Y]")
    months = dts.astype("datetime64[M]")
    days = dts.astype("datetime64[D]")
    if name == "year":
        r = years.astype(np.int64) + 1970
    elif name == "month":
        r = months.astype(np.int64) % 12 + 1
    elif name == "day_of_month":
        r = (days - months).astype(np.int64) + 1
    elif name == "day_of_year":
        r = (days - years).astype(np.int64) + 1
    elif name == "day_of_week":
        r = (days.astype(np.int64) + 4) % 7
    elif name == "hour":
        r = (dts - days).astype(np.int64) // 3600
    elif name == "minute":
        r = (dts - days).astype(np.int64) % 3600 // 60
    else:  # days_in_month
        r = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)
    out[ok] = r
    return out


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _check_label_name(name: str) -> None:
    if not name or (not _LABEL_NAME.match(name) and not name.isprintable()):
        raise QueryError(f"invalid destination label name in label_join(): {name}")


def _label_replace(v: Vector, dst: str, repl: str, src: str, regex: str) -> Vector:
    try:
        rx = re.compile("^(?s:" + _go_regex(regex) + ")$")
    except re.error as exc:
        raise QueryError(f"invalid regular expression in label_replace(): {regex}") from exc
    if not dst or not _LABEL_NAME.match(dst):
        raise QueryError(f"invalid destination label name in label_replace(): {dst}")
    template = _go_template(repl)
    labels = []
    for lb in v.labels:
        m = rx.match(get(lb, src))
        if m is None:
            labels.append(lb)
            continue
        labels.append(with_label(lb, dst, m.expand(template)))
    return Vector(labels, v.values, v.present)


def _go_regex(rx: str) -> str:
    return re.sub(r"\(\?P<", "(?P<", rx)


def _go_template(repl: str) -> str:
    """Go's `$1`, `${1}`, `$name` expansion syntax into Python's `\\g<...>`."""
    out = []
    i = 0
    while i < len(repl):
        c = repl[i]
        if c == "$" and i + 1 < len(repl):
            if repl[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            m = re.match(r"\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)", repl[i + 1:])
            if m:
                out.append("\\g<" + (m.group(1) or m.group(2)) + ">")
                i += 1 + m.end()
                continue
        out.append(c.replace("\\", "\\\\"))
        i += 1
    return "".join(out)


def _natural(s: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s))


# --- classic histograms ---------------------------------------------------------------------

def _buckets(ev: _Evaluation, v: Vector, pos: str) -> tuple[list[Labels], list[list[tuple[float, int]]]]:
    groups: dict[Labels, list[tuple[float, int]]] = {}
    for i, lb in enumerate(v.labels):
        le = get(lb, "le")
        try:
            bound = float(le.replace("+Inf", "inf").replace("Inf", "inf")) if le else float("nan")
        except ValueError:
            bound = float("nan")
        if np.isnan(bound):
            ev.warn(f'bucket label "le" is missing or has a malformed value of "{le}" for metric name '
                    f'"{get(lb, "__name__")}"{pos}')
            continue
        key = tuple(p for p in lb if p[0] not in ("le", "__name__"))
        groups.setdefault(key, []).append((bound, i))
    return list(groups), list(groups.values())


def _histogram_quantile(ev: _Evaluation, q: np.ndarray, v: Vector, pos: str) -> Vector:
    keys, groups = _buckets(ev, v, pos)
    steps = v.values.shape[1]
    out = np.full((len(keys), steps), np.nan)
    pres = np.zeros((len(keys), steps), bool)
    for g, members in enumerate(groups):
        members.sort()
        bounds = np.array([b for b, _ in members])
        rows = np.array([i for _, i in members])
        counts = v.values[rows]  # (B, S)
        p = v.present[rows]
        has = p.any(axis=0)
        slow = has
        if len(bounds) >= 2 and bool((np.diff(bounds) > 0).all()):
            # every bucket present and finite: all those steps at once
            fast = has & p.all(axis=0) & np.isfinite(counts).all(axis=0)
            if fast.any():
                cols = np.nonzero(fast)[0]
                out[g, cols], forced_any = _bucket_quantile_steps(q[cols], bounds, counts[:, cols])
                slow = has & ~fast
                if forced_any:
                    name = get(v.labels[rows[0]], "__name__")
                    ev.info("input to histogram_quantile needed to be fixed for monotonicity (see "
                            "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
                            f'for metric name "{name}"{pos}')
        for s in np.nonzero(slow)[0]:
            ok = p[:, s]
            out[g, s], forced = _bucket_quantile(float(q[s]), bounds[ok], counts[ok, s])
            if forced:
                name = get(v.labels[rows[0]], "__name__")
                ev.info("input to histogram_quantile needed to be fixed for monotonicity (see "
                        "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
                        f'for metric name "{name}"{pos}')
        pres[g] = has
    return Vector(keys, out, pres).compact()


def _bucket_quantile_steps(q: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, bool]:
    """`_bucket_quantile` for many steps at once: `bounds` (B,) strictly ascending, `counts`
    (B, S) finite. Same operations in the same order, so the same floats; also whether
    monotonicity was forced at any step."""
    nb, steps = counts.shape
    out = np.full(steps, np.nan)
    if not np.isinf(bounds[-1]) or bounds[-1] < 0:
        out[q < 0], out[q > 1] = -np.inf, np.inf
        return out, False
    counts = counts.copy()
    prev = counts[0].copy()
    for i in range(1, nb):  # correctPrecisionErrors (tolerance 1e-12)
        cur = counts[i]
        delta = np.abs(cur - prev)
        moved = delta != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            fix = moved & (cur != 0) & (delta / cur <= 1e-12)
        counts[i] = np.where(fix, prev, cur)
        prev = np.where(moved & ~fix, cur, prev)
    mono = np.maximum.accumulate(counts, axis=0)
    valid = (q >= 0) & (q <= 1)
    forced = bool(((mono != counts).any(axis=0) & valid).any())
    counts = mono
    obs = counts[-1]
    rank = q * obs
    b = (counts[:-1] < rank[None, :]).sum(axis=0)
    cols = np.arange(steps)
    prev_c = np.where(b > 0, counts[np.maximum(b - 1, 0), cols], 0.0)
    start = np.where(b > 0, bounds[np.maximum(b - 1, 0)], 0.0)
    end = bounds[np.minimum(b, nb - 1)]
    c = counts[np.minimum(b, nb - 1), cols] - prev_c
    with np.errstate(divide="ignore", invalid="ignore"):
        res = start + (end - start) * ((rank - prev_c) / c)
    res = np.where(b == 0, np.where(bounds[0] <= 0, bounds[0], res), res)
    res = np.where(b == nb - 1, bounds[-2], res)
    res = np.where(obs == 0, np.nan, res)
    out = np.where(valid, res, out)
    out[q < 0], out[q > 1] = -np.inf, np.inf
    return out, forced


def _bucket_quantile(q: float, bounds: np.ndarray, counts: np.ndarray) -> tuple[float, bool]:
    """Prometheus' bucketQuantile for one step (bounds ascending); also whether monotonicity was
    forced on the counts."""
    if np.isnan(q):
        return np.nan, False
    if q < 0:
        return -np.inf, False
    if q > 1:
        return np.inf, False
    if len(bounds) == 0 or not np.isinf(bounds[-1]) or bounds[-1] < 0:
        return np.nan, False
    ub = np.unique(bounds)
    counts = np.array([counts[bounds == b].sum() for b in ub], dtype=np.float64)
    bounds = ub
    # correctPrecisionErrors (tolerance 1e-12), then ensureMonotonic
    prev = counts[0]
    for i in range(1, len(counts)):
        cur = counts[i]
        delta = abs(cur - prev)
        if delta == 0:
            continue
        if cur != 0 and delta / cur <= 1e-12:
            counts[i] = prev
        else:
            prev = cur
    mono = np.maximum.accumulate(counts)
    forced = bool((mono != counts).any())
    counts = mono
    if len(bounds) < 2:
        return np.nan, forced
    observations = counts[-1]
    if observations == 0:
        return np.nan, forced
    rank = q * observations
    b = int(np.searchsorted(counts[:-1], rank, "left"))
    if b == len(bounds) - 1:
        return float(bounds[-2]), forced
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0]), forced
    start, end = 0.0, float(bounds[b])
    c = float(counts[b])
    if b > 0:
        start = float(bounds[b - 1])
        c -= float(counts[b - 1])
        rank -= float(counts[b - 1])
    return start + (end - start) * (rank / c), forced


def _histogram_fraction(ev: _Evaluation, lower: np.ndarray, upper: np.ndarray, v: Vector,
                        pos: str) -> Vector:
    keys, groups = _buckets(ev, v, pos)
    steps = v.values.shape[1]
    out = np.full((len(keys), steps), np.nan)
    pres = np.zeros((len(keys), steps), bool)
    for g, members in enumerate(groups):
        members.sort()
        bounds = np.array([b for b, _ in members])
        rows = np.array([i for _, i in members])
        for s in range(steps):
            ok = v.present[rows, s]
            if not ok.any():
                continue
            pres[g, s] = True
            out[g, s] = _bucket_fraction(float(lower[s]), float(upper[s]), bounds[ok],
                                         np.maximum.accumulate(v.values[rows[ok], s]))
    return Vector(keys, out, pres).compact()


def _rank_in(rank: float, count: float, b_lo: float, b_hi: float, x: float) -> float:
    """Observations up to x inside one bucket: linear, or at the finite edge of an infinite one."""
    if np.isinf(b_hi):
        return rank
    if np.isinf(b_lo):
        return rank + count
    return rank + count * (x - b_lo) / (b_hi - b_lo)


def _bucket_fraction(lower: float, upper: float, bounds: np.ndarray, counts: np.ndarray) -> float:
    """Fraction of observations in [lower, upper] from cumulative classic buckets.

    Buckets are (previous bound, bound]; the first starts at 0 when its bound is positive, else
    at -Inf. Inside a bucket of infinite width nothing is interpolated (see _rank_in)."""
    if len(bounds) == 0 or not np.isinf(bounds[-1]):
        return np.nan
    ub = np.unique(bounds)
    counts = np.maximum.accumulate(np.array([counts[bounds == b].sum() for b in ub], dtype=np.float64))
    bounds = ub
    total = float(counts[-1])
    if total == 0 or np.isnan(lower) or np.isnan(upper):
        return np.nan
    if lower >= upper:
        return 0.0
    rank = 0.0
    lower_rank = upper_rank = 0.0
    lower_set = upper_set = False
    for i, b_hi in enumerate(bounds):
        b_lo = float(bounds[i - 1]) if i > 0 else (0.0 if b_hi > 0 else -np.inf)
        count = float(counts[i]) - (float(counts[i - 1]) if i > 0 else 0.0)
        if not lower_set and b_lo >= lower:
            lower_rank, lower_set = rank, True
        if not upper_set and b_lo >= upper:
            upper_rank, upper_set = rank, True
        if lower_set and upper_set:
            break
        if not lower_set and b_lo < lower < b_hi:
            lower_rank, lower_set = _rank_in(rank, count, b_lo, b_hi, lower), True
        if not upper_set and b_lo < upper < b_hi:
            upper_rank, upper_set = _rank_in(rank, count, b_lo, b_hi, upper), True
        if lower_set and upper_set:
            break
        rank += count
    if not lower_set or lower_rank > total:
        lower_rank = total
    if not upper_set or upper_rank > total:
        upper_rank = total
    return max(0.0, upper_rank - lower_rank) / total
