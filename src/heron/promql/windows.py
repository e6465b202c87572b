"""Range-vector functions (`rate`, `*_over_time`, ...) for every (series, step) window at once.

Windows come from `Range.windows()` as (lo, hi) index arrays. Functions that need only the
first/last samples (rate, increase, delta, irate, idelta, count, last) use those indexes
directly; the rest gather the window samples into a padded (pairs, width) block, a chunk of
pairs at a time so memory stays bounded, and reduce along the last axis.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from heron.promql.values import Range

CHUNK_ELEMS = 2_000_000

Reducer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(t (P,W) int64 ms, v (P,W), mask (P,W), n (P,), end (P,) ms) -> result (P,)"""


def gather(r: Range, reducer: Reducer, min_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Apply `reducer` to every window; returns (values (N,S), present (N,S))."""
    lo, hi = r.windows()
    shape = lo.shape
    lo, hi = lo.ravel(), hi.ravel()
    # reducers see the outer step time (predict_linear's intercept), not the @/offset time
    step_times = r.steps if r.steps is not None else r.ends
    ends = np.broadcast_to(step_times[None, :], shape).ravel()
    n = hi - lo
    out = np.full(lo.shape, np.nan)
    present = n >= min_samples
    idx_all = np.nonzero(present)[0]
    if len(idx_all):
        width = int(n[idx_all].max())
        per = max(1, CHUNK_ELEMS // max(width, 1))
        ts, vs = r.sel.ts, r.sel.values
        for c in range(0, len(idx_all), per):
            idx = idx_all[c:c + per]
            w = int(n[idx].max())
            pos = lo[idx][:, None] + np.arange(w)[None, :]
            mask = pos < hi[idx][:, None]
            pos = np.where(mask, pos, lo[idx][:, None])
            out[idx] = reducer(ts[pos], vs[pos], mask, n[idx], ends[idx])
    return out.reshape(shape), present.reshape(shape)


def _first_last(r: Range) -> tuple[np.ndarray, ...]:
    lo, hi = r.windows()
    n = hi - lo
    ok = n >= 1
    first = np.where(ok, lo, 0)
    last = np.where(ok, hi - 1, 0)
    return lo, hi, n, first, last


def extrapolated(r: Range, is_counter: bool, is_rate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus' extrapolatedRate for rate/increase/delta.

    Every window is read through its first and last sample index; the value before each
    counter reset inside a window is added to it in sample order. Bounds and arithmetic run
    in place over blocks of series small enough to stay in the CPU cache."""
    ts, vs = r.sel.ts, r.sel.values
    shape = (len(r.sel.labels), len(r.ends))
    out = np.full(shape, np.nan)
    present = np.zeros(shape, bool)
    if len(ts) == 0:
        return out, present
    resets = None
    if is_counter and len(vs) > 1:
        # Counter resets: the value before every drop inside the window is added to it.
        dropped = np.zeros(len(vs), bool)
        np.less(vs[1:], vs[:-1], out=dropped[1:])
        sidx_starts = r.sel.starts[:-1]
        dropped[sidx_starts[sidx_starts < len(vs)]] = False
        at = np.flatnonzero(dropped)
        if len(at):
            # drops at or before sample x: count[x + 1] (count[0] = 0 for "before the first")
            count = np.zeros(len(vs) + 1, np.int32 if len(at) < 2**31 else np.int64)
            np.cumsum(dropped, out=count[1:])
            resets = (at, vs[at - 1], count)
    ends = r.ends[None, :]
    range_start = ends - r.range_ms
    with np.errstate(divide="ignore", invalid="ignore"):
        starts = r.sel.starts
        for a, b, lo, hi in r.window_blocks():
            ok = (hi - lo) >= 2
            present[a:b] = ok
            block_resets = resets
            if resets is not None and resets[2][starts[a]] == resets[2][starts[b]]:
                block_resets = None  # no reset among this block's samples
            res = _extrapolate_block(lo, hi, ts, vs, block_resets, ends, range_start, r.range_ms, is_counter,
                                     is_rate)
            np.copyto(out[a:b], res, where=ok)
    return out, present


def _extrapolate_block(lo: np.ndarray, hi: np.ndarray, ts: np.ndarray, vs: np.ndarray,
                       resets: tuple[np.ndarray, np.ndarray, np.ndarray] | None, ends: np.ndarray,
                       range_start: np.ndarray, range_ms: int, is_counter: bool, is_rate: bool) -> np.ndarray:
    n = hi - lo
    first = np.minimum(lo, len(vs) - 1)
    last = hi - 1  # -1 where a series has no sample yet: a valid index, masked out by the caller
    first_v = vs[first]
    result = vs[last]
    result -= first_v
    if resets is not None:
        # Add each reset's value in sample order, as Prometheus does: a window's sum then
        # depends only on its own samples, not on where the selection starts.
        # Only the few windows holding a drop are visited; the prefix count of drops gives each
        # window's first drop (a) and how many it holds (k) without a search.
        _, before, count = resets
        start = count[first + 1]
        k = count[hi] - start  # drops in (first, last]; <= 0 for windows masked out
        hit = np.flatnonzero(k > 0)
        if len(hit):
            flat = result.reshape(-1)  # a view: result is a fresh contiguous array
            k, a = k.reshape(-1)[hit], start.reshape(-1)[hit]
            for j in range(int(k.max())):
                w = k > j
                flat[hit[w]] += before[a[w] + j]
    first_t = ts[first]
    last_t = ts[last]
    # int64 ms -> float64 s in one pass each: the same conversion and IEEE division as a cast
    # followed by /= 1000, without the intermediate array
    sampled = np.divide(last_t - first_t, 1000.0)
    np.subtract(first_t, range_start, out=first_t)
    dur_start = np.divide(first_t, 1000.0)
    np.subtract(ends, last_t, out=last_t)
    dur_end = np.divide(last_t, 1000.0)
    n -= 1
    np.maximum(n, 1, out=n)
    avg_dur = sampled / n
    threshold = avg_dur * 1.1
    avg_dur /= 2  # now half the average interval, what an extrapolation past a gap adds
    np.copyto(dur_start, avg_dur, where=dur_start >= threshold)
    if is_counter:
        # min(dur_start, time to reach zero) where the counter would cross zero
        to_zero = first_v / result
        to_zero *= sampled
        np.copyto(dur_start, to_zero, where=(result > 0) & (first_v >= 0) & (to_zero < dur_start))
    np.copyto(dur_end, avg_dur, where=dur_end >= threshold)
    factor = sampled + dur_start
    factor += dur_end
    factor /= sampled
    if is_rate:
        factor /= range_ms / 1000.0
    result *= factor
    return result


def instant_delta(r: Range, is_rate: bool) -> tuple[np.ndarray, np.ndarray]:
    """irate / idelta: the last two samples of each window."""
    lo, hi = r.windows()
    ts, vs = r.sel.ts, r.sel.values
    present = (hi - lo) >= 2
    if len(ts) == 0:
        return np.full(lo.shape, np.nan), present
    last = hi - 1  # indexes outside a window are only read where the result is masked out
    prev = np.maximum(hi - 2, 0)
    lv, pv = vs[last], vs[prev]
    result = lv - pv
    if is_rate:
        np.copyto(result, lv, where=lv < pv)  # counter reset
        with np.errstate(divide="ignore", invalid="ignore"):
            result /= (ts[last] - ts[prev]) / 1000.0
    result[~present] = np.nan
    return result, present


def count(r: Range) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = r.windows()
    n = (hi - lo).astype(np.float64)
    return n, n > 0


def last(r: Range) -> tuple[np.ndarray, np.ndarray]:
    _, _, n, _, lst = _first_last(r)
    if len(r.sel.values) == 0:
        return np.full(n.shape, np.nan), n > 0
    return r.sel.values[lst], n > 0


# --- gather reducers -------------------------------------------------------------------------

def _masked(v: np.ndarray, mask: np.ndarray, fill: float) -> np.ndarray:
    return np.where(mask, v, fill)


def r_sum(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    return kahan(v, mask)


def kahan_inc(inc: np.ndarray, total: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus' kahanSumInc (Neumaier) on arrays."""
    t = total + inc
    big = np.abs(total) >= np.abs(inc)
    c = np.where(big, (total - t) + inc, (inc - t) + total)
    return t, np.where(np.isinf(t), 0.0, comp + c)


def seq_avg(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Prometheus' mean: Kahan sum, switching to an incremental mean once the sum overflows.

    Rows are independent series of values in order; masked-out slots are skipped."""
    rows = v.shape[0]
    total = np.zeros(rows)
    comp = np.zeros(rows)
    mean = np.zeros(rows)
    count = np.zeros(rows)
    incremental = np.zeros(rows, bool)
    for j in range(v.shape[1]):
        m = mask[:, j]
        x = np.where(m, v[:, j], 0.0)
        count = count + m
        first = m & (count == 1)
        new_t, new_c = kahan_inc(x, total, comp)
        overflow = m & ~incremental & ~first & np.isinf(new_t) & ~np.isinf(x) & ~np.isinf(total)
        plain = m & ~incremental & ~overflow
        total = np.where(first, x, np.where(plain, new_t, total))
        comp = np.where(first, 0.0, np.where(plain, new_c, comp))
        # switch to incremental mean: mean so far from the sum, compensation scaled alike
        prev = np.maximum(count - 1, 1)
        mean = np.where(overflow, total / prev, mean)
        comp = np.where(overflow, comp / prev, comp)
        incremental = incremental | overflow
        step = m & incremental
        if step.any():
            q = (count - 1) / np.maximum(count, 1)
            nm, nc = kahan_inc(x / np.maximum(count, 1), q * mean, q * comp)
            mean = np.where(step, nm, mean)
            comp = np.where(step, nc, comp)
    with np.errstate(all="ignore"):
        return np.where(incremental, mean + comp, total / count + comp / count)


def r_avg(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    return seq_avg(v, mask)


def r_min(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    return np.fmin.reduce(_masked(v, mask, np.nan), axis=1)


def r_max(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    return np.fmax.reduce(_masked(v, mask, np.nan), axis=1)


def r_stdvar(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    # Prometheus' varianceOverTime: Welford's update with Kahan-compensated sums.
    rows = v.shape[0]
    count = np.zeros(rows)
    mean, c_mean = np.zeros(rows), np.zeros(rows)
    aux, c_aux = np.zeros(rows), np.zeros(rows)
    for j in range(v.shape[1]):
        m = mask[:, j]
        x = v[:, j]
        count = count + m
        delta = x - (mean + c_mean)
        nm, ncm = kahan_inc(delta / np.maximum(count, 1), mean, c_mean)
        mean, c_mean = np.where(m, nm, mean), np.where(m, ncm, c_mean)
        na, nca = kahan_inc(delta * (x - (mean + c_mean)), aux, c_aux)
        aux, c_aux = np.where(m, na, aux), np.where(m, nca, c_aux)
    return (aux + c_aux) / count


def r_stddev(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    return np.sqrt(r_stdvar(t, v, mask, n, end))


def r_present(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    return np.ones(len(n))


def r_changes(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    pair = mask[:, 1:] & mask[:, :-1]
    a, b = v[:, 1:], v[:, :-1]
    changed = (a != b) & ~(np.isnan(a) & np.isnan(b))
    return (pair & changed).sum(axis=1).astype(np.float64)


def r_resets(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    pair = mask[:, 1:] & mask[:, :-1]
    return (pair & (v[:, 1:] < v[:, :-1])).sum(axis=1).astype(np.float64)


def kahan(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row sums with Prometheus' Kahan-Neumaier summation, in sample order (column by column)."""
    total = np.zeros(v.shape[0])
    comp = np.zeros(v.shape[0])
    for j in range(v.shape[1]):
        total, comp = kahan_inc(np.where(mask[:, j], v[:, j], 0.0), total, comp)
    return total + comp


def _regression(t, v, mask, n, intercept_t):  # type: ignore[no-untyped-def]
    x = _masked((t - intercept_t[:, None]) / 1000.0, mask, 0.0)
    y = _masked(v, mask, 0.0)
    first = v[:, :1]
    const = (_masked(v, mask, np.nan) == first) | ~mask
    all_const = const.all(axis=1)
    sx, sy = kahan(x, mask), kahan(y, mask)
    sxy, sx2 = kahan(x * y, mask), kahan(x * x, mask)
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = cov / var
    icpt = sy / n - slope * sx / n
    slope = np.where(all_const, np.where(np.isinf(v[:, 0]), np.nan, 0.0), slope)
    icpt = np.where(all_const, np.where(np.isinf(v[:, 0]), np.nan, v[:, 0]), icpt)
    return slope, icpt


def r_deriv(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    slope, _ = _regression(t, v, mask, n, t[:, 0])
    return slope


def make_predict_linear(duration: np.ndarray) -> Reducer:
    def r(t, v, mask, n, end):  # type: ignore[no-untyped-def]
        slope, icpt = _regression(t, v, mask, n, end)
        return icpt + slope * duration
    return r


def quantile_sorted(q: float, values: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Prometheus quantile over rows of `values` sorted ascending (NaN first), n valid each."""
    out = np.full(len(n), np.nan)
    if np.isnan(q):
        return out
    if q < 0:
        return np.where(n > 0, -np.inf, np.nan)
    if q > 1:
        return np.where(n > 0, np.inf, np.nan)
    ok = n > 0
    rank = q * (n - 1)
    lower = np.maximum(0, np.floor(rank)).astype(np.int64)
    upper = np.minimum(n - 1, lower + 1).astype(np.int64)
    weight = rank - np.floor(rank)
    rows = np.arange(len(n))
    lo_v = values[rows, np.clip(lower, 0, None)]
    up_v = values[rows, np.clip(upper, 0, None)]
    with np.errstate(invalid="ignore"):
        res = lo_v * (1 - weight) + up_v * weight
    return np.where(ok, res, out)


def sort_nan_first(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sort rows ascending with NaN first and masked-out slots last (Prometheus' order)."""
    prim = np.where(mask, np.where(np.isnan(v), 0, 1), 2)
    order = np.lexsort((np.where(mask & ~np.isnan(v), v, 0.0), prim), axis=1)
    return np.take_along_axis(v, order, axis=1)


def make_quantile(q: float) -> Reducer:
    def r(t, v, mask, n, end):  # type: ignore[no-untyped-def]
        return quantile_sorted(q, sort_nan_first(v, mask), n)
    return r


def r_mad(t, v, mask, n, end):  # type: ignore[no-untyped-def]
    med = quantile_sorted(0.5, sort_nan_first(v, mask), n)
    dev = np.abs(v - med[:, None])
    return quantile_sorted(0.5, sort_nan_first(dev, mask), n)


def make_holt_winters(sf: float, tf: float) -> Reducer:
    def r(t, v, mask, n, end):  # type: ignore[no-untyped-def]
        # Sequential smoothing: loop over the window width, vectorized over all windows.
        out = np.full(len(n), np.nan)
        if v.shape[1] < 2:
            return out
        s0 = v[:, 0].copy()
        s1 = v[:, 0].copy()
        b = v[:, 1] - v[:, 0]
        for i in range(1, v.shape[1]):
            ok = mask[:, i]
            x = v[:, i]
            # trend update uses previous smoothed values (s0 before this step)
            tr = np.where(i == 1, b, tf * (s1 - s0) + (1 - tf) * b)
            new_s1 = sf * x + (1 - sf) * (s1 + tr)
            b = np.where(ok, tr, b)
            s0 = np.where(ok, s1, s0)
            s1 = np.where(ok, new_s1, s1)
        return np.where(n >= 2, s1, np.nan)
    return r


def ts_reducer(which: str) -> Reducer:
    def r(t, v, mask, n, end):  # type: ignore[no-untyped-def]
        rows = np.arange(len(n))
        tf = t.astype(np.float64) / 1000.0
        if which == "last":
            return tf[rows, n - 1]
        if which == "first":
            return tf[:, 0]
        vv = _masked(v, mask, np.nan)
        if which == "min":
            key = np.where(np.isnan(vv), np.inf, vv)
            # last occurrence of the minimum (Prometheus keeps the later sample on ties)
            rev = key[:, ::-1]
            i = key.shape[1] - 1 - np.argmin(rev, axis=1)
        else:
            key = np.where(np.isnan(vv), -np.inf, vv)
            rev = key[:, ::-1]
            i = key.shape[1] - 1 - np.argmax(rev, axis=1)
        return tf[rows, i]
    return r


# --- fast paths: O(1) per window on the flat sample arrays ----------------------------------

def minmax(r: Range, op: str) -> tuple[np.ndarray, np.ndarray]:
    """min/max_over_time through a sparse table: every window is two overlapping power-of-two
    blocks, so the cost is O(samples x log(width)) whatever the window overlap. Built and read
    per block of series (cache-sized), with the levels stacked so each block is two gathers."""
    vals = r.sel.values
    shape = (len(r.sel.labels), len(r.ends))
    out = np.full(shape, np.nan)
    present = np.zeros(shape, bool)
    if len(vals) == 0:
        return out, present
    f = np.fmax if op == "max" else np.fmin
    starts = r.sel.starts
    for a, b, lo, hi in r.window_blocks():
        n = hi - lo
        present[a:b] = n > 0
        s0, s1 = int(starts[a]), int(starts[b])
        width = int(n.max()) if n.size else 0
        if s1 == s0 or width <= 0:
            continue
        v = vals[s0:s1]
        m = len(v)
        levels = [v]
        k = 1
        while 2 * k <= width:
            prev = levels[-1]
            nxt = prev.copy()
            f(prev[:m - k], prev[k:], out=nxt[:m - k])
            levels.append(nxt)
            k *= 2
        table = np.concatenate(levels) if len(levels) > 1 else v
        lvl = (np.frexp(np.maximum(n, 1))[1] - 1).astype(np.int64)  # floor(log2(n)), exact
        base = lvl * m
        i1 = base + np.minimum(lo - s0, m - 1)
        i2 = base + np.clip(hi - s0 - (np.int64(1) << lvl), 0, m - 1)
        res = f(table[i1], table[i2])
        np.copyto(out[a:b], res, where=n > 0)
    return out, present


def sums(r: Range, op: str) -> tuple[np.ndarray, np.ndarray] | None:
    """sum/avg/count_over_time from prefix sums; None when the values could lose precision
    that way (very large or non-finite values): then the Kahan path runs instead."""
    lo, hi = r.windows()
    n = hi - lo
    present = n > 0
    vals = r.sel.values
    if len(vals) and (not np.isfinite(vals).all() or np.abs(vals).max() > 1e12):
        return None
    csum = np.concatenate([[0.0], np.cumsum(vals)])
    total = csum[hi] - csum[lo]
    if op == "sum":
        return np.where(present, total, np.nan), present
    return np.where(present, total / np.maximum(n, 1), np.nan), present
