"""The array fast paths of the evaluator agree with plain per-window / per-step references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from heron.promql import aggregations, values
from heron.promql import windows as W
from heron.promql.fetch import Selection
from heron.promql.functions import _bucket_quantile, _bucket_quantile_steps
from heron.promql.parse import ParseError, parse_query
from heron.promql.values import Range, Vector, upto


def _selection(rng: np.random.Generator, n: int, counter: bool = True) -> Selection:
    cnt = rng.integers(0, 40, n)
    ts_parts, v_parts = [], []
    for c in cnt:
        ts_parts.append(np.sort(rng.choice(2000, c, replace=False)).astype(np.int64) * 1000
                        + int(rng.integers(0, 999)))
        steps = rng.random(c) * 10
        if counter and c > 4 and rng.random() < 0.5:  # a reset
            steps[c // 2] = -float(steps[: c // 2].sum())
        v_parts.append(np.cumsum(steps) if counter else rng.normal(0, 5, c))
    starts = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
    ts = np.concatenate(ts_parts) if n else np.empty(0, np.int64)
    vals = np.concatenate(v_parts) if n else np.empty(0)
    return Selection([(("i", str(i)),) for i in range(n)], ts, vals, starts, -10**7, 10**7)


@pytest.mark.parametrize("regular", [True, False])
def test_upto_equals_a_search_per_pair(regular: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values, "SMALL", 0)  # the counting path even for these small inputs
    rng = np.random.default_rng(11)
    for _ in range(50):
        sel = _selection(rng, int(rng.integers(0, 6)))
        if regular:
            times = np.arange(int(rng.integers(-5000, 5000)), 2_100_000, int(rng.integers(1000, 90_000)))
        else:
            times = np.sort(rng.integers(-5000, 2_100_000, int(rng.integers(1, 30))))
        times = times.astype(np.int64)
        want = np.searchsorted(sel.keys(), sel.query_keys(times), "right")
        assert np.array_equal(upto(sel, times), want.reshape(len(sel.labels), len(times)))
        rev = times[::-1].copy()
        assert np.array_equal(upto(sel, rev),
                              np.searchsorted(sel.keys(), sel.query_keys(rev), "right").reshape(-1, len(rev)))


def _ref_rate(ts: np.ndarray, vs: np.ndarray, end: int, rng_ms: int, counter: bool, rate: bool) -> float:
    """extrapolatedRate for one window, written out as Prometheus' loop."""
    m = (ts > end - rng_ms) & (ts <= end)
    t, v = ts[m], vs[m]
    if len(t) < 2:
        return math.nan
    result = v[-1] - v[0]
    if counter:
        drops = sum(float(v[i - 1]) for i in range(1, len(v)) if v[i] < v[i - 1])
        result += drops
    sampled = (t[-1] - t[0]) / 1000.0
    dur_start = (t[0] - (end - rng_ms)) / 1000.0
    dur_end = (end - t[-1]) / 1000.0
    avg = sampled / (len(t) - 1)
    if dur_start >= avg * 1.1:
        dur_start = avg / 2
    if counter and result > 0 and v[0] >= 0:
        dur_start = min(dur_start, sampled * (v[0] / result))
    if dur_end >= avg * 1.1:
        dur_end = avg / 2
    factor = (sampled + dur_start + dur_end) / sampled
    if rate:
        factor /= rng_ms / 1000.0
    return float(result * factor)


@pytest.mark.parametrize(("counter", "rate"), [(True, True), (True, False), (False, False)])
def test_extrapolated_matches_the_per_window_loop(counter: bool, rate: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values, "BLOCK", 16)  # many small blocks: the block seams are exercised
    monkeypatch.setattr(values, "SMALL", 0)
    rng = np.random.default_rng(3)
    for _ in range(15):
        sel = _selection(rng, int(rng.integers(1, 7)), counter=counter)
        grid = np.arange(0, 2_000_000, int(rng.integers(7000, 70_000)), dtype=np.int64)
        rng_ms = int(rng.integers(20, 300)) * 1000
        with np.errstate(all="ignore"):
            got, present = W.extrapolated(Range(sel, grid, rng_ms), counter, rate)
        for i in range(len(sel.labels)):
            a, b = sel.starts[i], sel.starts[i + 1]
            for s, end in enumerate(grid.tolist()):
                want = _ref_rate(sel.ts[a:b], sel.values[a:b], end, rng_ms, counter, rate)
                if math.isnan(want):
                    assert not present[i, s] and math.isnan(got[i, s])
                else:
                    assert present[i, s] and got[i, s] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_histogram_quantile_steps_equal_the_step_by_step_path() -> None:
    rng = np.random.default_rng(5)
    for trial in range(400):
        nb = int(rng.integers(2, 9))
        bounds = np.sort(rng.choice([-2.0, -1.0, 0.0, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0], nb - 1,
                                    replace=False))
        bounds = np.append(bounds, 100.0 if trial % 9 == 0 else np.inf)
        counts = np.cumsum(rng.integers(0, 5, (nb, 12)), axis=0).astype(float)
        if trial % 3 == 0:
            counts[rng.integers(0, nb)] -= rng.integers(0, 4, 12)  # not monotonic
        if trial % 5 == 0:
            counts[-1] = counts[-2] * (1 + 1e-13)  # a precision error
        if trial % 7 == 0:
            counts[:, :3] = 0
        q = rng.choice([0.5, 0.99, 0.0, 1.0, -1.0, 2.0, np.nan], 12)
        with np.errstate(all="ignore"):  # as in the engine: NaN arithmetic is PromQL semantics
            got, forced = _bucket_quantile_steps(q, bounds, counts)
            want = [_bucket_quantile(float(q[s]), bounds, counts[:, s].copy()) for s in range(12)]
        np.testing.assert_array_equal(got, [w for w, _ in want])
        assert forced == any(f for _, f in want)


def test_reduce_equals_per_group_sums() -> None:
    rng = np.random.default_rng(9)
    for trial in range(60):
        n, steps = int(rng.integers(1, 25)), int(rng.integers(1, 8))
        V = rng.normal(0, 1, (n, steps)) * 10.0 ** rng.integers(0, 6)
        P = rng.random((n, steps)) > (0.3 if trial % 2 else -1)
        gid = rng.integers(0, 4, n)
        order = {g: i for i, g in enumerate(dict.fromkeys(gid.tolist()))}
        gid = np.array([order[g] for g in gid.tolist()])
        groups = [(("g", str(i)),) for i in range(len(order))]
        for op in ("sum", "avg", "count", "min", "max"):
            with np.errstate(all="ignore"):
                out = aggregations._reduce(op, Vector([()] * n, V.copy(), P.copy()), gid, groups)
            for row, lb in enumerate(out.labels):
                g = groups.index(lb)
                for s in range(steps):
                    vals = [V[i, s] for i in range(n) if gid[i] == g and P[i, s]]
                    if not vals:
                        assert not out.present[row, s]
                        continue
                    want = {"sum": sum(vals), "avg": sum(vals) / len(vals), "count": len(vals),
                            "min": min(vals), "max": max(vals)}[op]
                    assert out.values[row, s] == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_parsed_queries_are_cached_and_errors_are_not() -> None:
    a = parse_query("sum by (job) (rate(x[5m]))")
    assert parse_query("sum by (job) (rate(x[5m]))") is a
    for _ in range(2):
        with pytest.raises(ParseError):
            parse_query("sum by (job) (rate(x[5m])")


@pytest.mark.parametrize("op", ["min", "max"])
def test_minmax_over_time_matches_the_per_window_loop(op: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values, "BLOCK", 16)
    monkeypatch.setattr(values, "SMALL", 0)
    rng = np.random.default_rng(4)
    for _ in range(15):
        sel = _selection(rng, int(rng.integers(1, 7)), counter=False)
        if len(sel.values):
            sel.values[rng.integers(0, len(sel.values), 2)] = np.nan
        grid = np.arange(0, 2_000_000, int(rng.integers(7000, 70_000)), dtype=np.int64)
        rng_ms = int(rng.integers(1, 400)) * 1000
        got, present = W.minmax(Range(sel, grid, rng_ms), op)
        for i in range(len(sel.labels)):
            ts, vs = sel.ts[sel.starts[i]:sel.starts[i + 1]], sel.values[sel.starts[i]:sel.starts[i + 1]]
            for s, end in enumerate(grid.tolist()):
                w = vs[(ts > end - rng_ms) & (ts <= end)]
                assert present[i, s] == (len(w) > 0)
                if len(w):
                    want = np.nanmax(w) if op == "max" and not np.isnan(w).all() else \
                        np.nanmin(w) if not np.isnan(w).all() else np.nan
                    np.testing.assert_equal(got[i, s], want)


def test_irate_uses_the_last_two_samples() -> None:
    rng = np.random.default_rng(8)
    sel = _selection(rng, 5)
    grid = np.arange(0, 2_000_000, 30_000, dtype=np.int64)
    with np.errstate(all="ignore"):
        got, present = W.instant_delta(Range(sel, grid, 120_000), True)
    for i in range(5):
        ts, vs = sel.ts[sel.starts[i]:sel.starts[i + 1]], sel.values[sel.starts[i]:sel.starts[i + 1]]
        for s, end in enumerate(grid.tolist()):
            m = np.nonzero((ts > end - 120_000) & (ts <= end))[0]
            assert present[i, s] == (len(m) >= 2)
            if len(m) >= 2:
                a, b = m[-2], m[-1]
                d = vs[b] - vs[a] if vs[b] >= vs[a] else vs[b]
                assert got[i, s] == d / ((ts[b] - ts[a]) / 1000.0)
