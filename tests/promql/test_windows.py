"""Window bounds and rate extrapolation against plain per-window references.

`values.bounds` counts samples per (series, step) bin instead of searching, for a window's start
and end grid at once; `windows.extrapolated` finds counter resets through a prefix count of drops.
Both are checked here against the obvious per-window loop (a search per window, Prometheus'
extrapolatedRate written out sample by sample), bit for bit, on random selections with empty
series, samples outside the grid, irregular grids and several resets in one window.
"""

from __future__ import annotations

import numpy as np
import pytest

from heron.promql.fetch import Selection
from heron.promql.values import Range, bounds, upto
from heron.promql.windows import extrapolated


def _selection(rng: np.random.Generator, series: int, per: int, span: int, counter: bool) -> Selection:
    counts = rng.integers(0, per, series)
    counts[rng.random(series) < 0.2] = 0  # series without a sample in the selection
    ts_parts, v_parts = [], []
    for i, c in enumerate(counts):
        # unique times per series, as the head stores them
        ts_parts.append(np.unique(rng.integers(-span // 4, span, c)))
        c = counts[i] = len(ts_parts[-1])
        if counter:  # increments with frequent drops to a small value (counter resets)
            v = np.cumsum(rng.random(c) * 10)
            drops = rng.random(c) < 0.15
            v = np.where(drops, rng.random(c), v) + np.cumsum(np.where(drops, 0, rng.random(c)))
            v_parts.append(v)
        else:
            v_parts.append(rng.normal(0, 100, c))
    ts = np.concatenate(ts_parts).astype(np.int64) if counts.sum() else np.zeros(0, np.int64)
    vals = np.concatenate(v_parts) if counts.sum() else np.zeros(0)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Selection([(("i", str(i)),) for i in range(series)], ts, vals, starts, -span, span)


def _grid(rng: np.random.Generator, span: int) -> np.ndarray:
    step = int(rng.integers(1, span // 8))
    start = int(rng.integers(-span // 8, span // 2))
    grid = np.arange(start, span + span // 8, step, dtype=np.int64)
    return grid[: int(rng.integers(1, 60))]


def _reference_upto(sel: Selection, times: np.ndarray, a: int, b: int) -> np.ndarray:
    out = np.zeros((b - a, len(times)), np.int64)
    for i in range(a, b):
        s0, s1 = int(sel.starts[i]), int(sel.starts[i + 1])
        out[i - a] = s0 + np.searchsorted(sel.ts[s0:s1], times, "right")
    return out


@pytest.mark.parametrize("seed", range(6))
def test_bounds_match_a_search_per_window(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        sel = _selection(rng, int(rng.integers(1, 40)), 50, 20_000, counter=False)
        grid = _grid(rng, 20_000)
        if rng.random() < 0.2:  # an irregular grid takes the search path per sample
            grid = np.unique(grid + rng.integers(0, 50, len(grid)))
        rng_ms = int(rng.integers(0, 6_000))
        n = len(sel.labels)
        for a, b in ((0, n), (n // 3, n), (0, max(1, n // 2))):
            lo, hi = bounds(sel, grid - rng_ms, grid, a, b)
            assert np.array_equal(lo, _reference_upto(sel, grid - rng_ms, a, b))
            assert np.array_equal(hi, _reference_upto(sel, grid, a, b))
            assert np.array_equal(upto(sel, grid, a, b), hi)


def _reference_rate(ts: np.ndarray, vs: np.ndarray, end: int, range_ms: int, is_counter: bool,
                    is_rate: bool) -> float | None:
    """Prometheus' extrapolatedRate for one window, sample by sample."""
    if len(ts) < 2:
        return None
    result = float(vs[-1] - vs[0])
    if is_counter:
        for k in range(1, len(vs)):
            if vs[k] < vs[k - 1]:
                result += float(vs[k - 1])
    sampled = (ts[-1] - ts[0]) / 1000.0
    dur_start = (ts[0] - (end - range_ms)) / 1000.0
    dur_end = (end - ts[-1]) / 1000.0
    avg = sampled / (len(ts) - 1)
    threshold = avg * 1.1
    if dur_start >= threshold:
        dur_start = avg / 2
    if is_counter and result > 0 and vs[0] >= 0:
        to_zero = sampled * (vs[0] / result)
        if to_zero < dur_start:
            dur_start = to_zero
    if dur_end >= threshold:
        dur_end = avg / 2
    factor = (sampled + dur_start + dur_end) / sampled
    if is_rate:
        factor /= range_ms / 1000.0
    return result * factor


@pytest.mark.parametrize("fn", ["rate", "increase", "delta"])
def test_extrapolated_matches_prometheus_window_by_window(fn: str) -> None:
    rng = np.random.default_rng(["rate", "increase", "delta"].index(fn))
    resets_seen = 0
    for _ in range(15):
        sel = _selection(rng, int(rng.integers(1, 30)), 60, 20_000, counter=fn != "delta")
        grid = _grid(rng, 20_000)
        range_ms = int(rng.integers(500, 8_000))
        vals, pres = extrapolated(Range(sel, grid, range_ms), is_counter=fn != "delta", is_rate=fn == "rate")
        for i in range(len(sel.labels)):
            s0, s1 = int(sel.starts[i]), int(sel.starts[i + 1])
            ts, vs = sel.ts[s0:s1], sel.values[s0:s1]
            for j, end in enumerate(grid):
                w = (ts > end - range_ms) & (ts <= end)
                want = _reference_rate(ts[w], vs[w], int(end), range_ms, fn != "delta", fn == "rate")
                resets_seen += int((np.diff(vs[w]) < 0).sum() > 1)
                assert pres[i, j] == (want is not None)
                if want is not None:
                    # the same operations in the same order: equal bits, not merely close
                    assert np.float64(vals[i, j]).view(np.int64) == np.float64(want).view(np.int64), \
                        (fn, i, j, vals[i, j], want)
                else:
                    assert np.isnan(vals[i, j])
    if fn != "delta":
        assert resets_seen > 20  # windows holding two drops or more were covered
