"""Evaluation-time values: every node evaluates over a grid of S step timestamps at once.

`Vector` holds N series as (N, S) value and presence arrays; `Scalar` one value per step;
`Range` the raw samples of a range selector or subquery with the window end of every step.
Labels are sorted (name, value) tuples, the hashable form of heron.metrics.model.Labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from heron.metrics.model import Labels
from heron.promql.fetch import Selection

BLOCK = 1 << 15  # (series, step) pairs per block: a block's temporaries stay in the CPU cache
SMALL = 256  # up to this many (series, step) pairs, window bounds come from one binary search


@dataclass
class Vector:
    labels: list[Labels]
    values: np.ndarray  # (N, S) float64
    present: np.ndarray  # (N, S) bool
    # Per-series flag: __name__ must go at the end of evaluation (delayed name removal).
    drop_name: np.ndarray | None = None
    ordered: bool = False

    @staticmethod
    def empty(steps: int) -> Vector:
        return Vector([], np.empty((0, steps)), np.zeros((0, steps), bool))

    def compact(self) -> Vector:
        """Drop series with no point at any step."""
        keep = self.present.any(axis=1)
        if keep.all():
            return self
        idx = np.nonzero(keep)[0]
        return self.take(idx)

    def take(self, idx: np.ndarray) -> Vector:
        dn = None if self.drop_name is None else self.drop_name[idx]
        return Vector([self.labels[i] for i in idx], self.values[idx], self.present[idx], dn,
                      self.ordered)


@dataclass
class Scalar:
    values: np.ndarray  # (S,)


@dataclass
class String:
    value: str


@dataclass
class Range:
    """Samples per series (stale markers removed) and, per step, the window (end - range, end]."""

    sel: Selection
    ends: np.ndarray  # (S,) int64 ms: window end per step (offset and @ applied)
    range_ms: int
    drop_name: bool = False
    steps: np.ndarray | None = None  # (S,) the outer step times (before offset and @)
    extra: dict[str, object] = field(default_factory=dict)

    def window_blocks(self) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """(a, b, lo, hi) for blocks of series rows a..b-1 of about BLOCK (series, step) pairs:
        the bounds are computed block by block, so they stay in the CPU cache for the caller."""
        steps = len(self.ends)
        per = max(1, BLOCK // max(steps, 1))
        cached = self.extra.get("windows")
        for a in range(0, len(self.sel.labels), per):
            b = min(len(self.sel.labels), a + per)
            if isinstance(cached, tuple):
                all_lo, all_hi = cached
                yield a, b, all_lo[a:b], all_hi[a:b]
            else:
                yield a, b, *bounds(self.sel, self.ends - self.range_ms, self.ends, a, b)

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) sample index bounds, each (N, S): samples lo..hi-1 are in the window."""
        cached = self.extra.get("windows")
        if cached is None:
            cached = self.extra["windows"] = bounds(self.sel, self.ends - self.range_ms, self.ends)
        return cached  # type: ignore[return-value]


def upto(sel: Selection, times: np.ndarray, a: int = 0, b: int | None = None) -> np.ndarray:
    """(N, S) flat index, per series i and time s, of the first sample of i after times[s]
    (a 'right' search of every (series, time) pair); rows a..b-1 only when given.

    Counts instead of searching: each sample finds its step in the short sorted `times` array,
    a bincount per (series, step) and a running sum give every bound in O(samples + N x S),
    where a search over all samples per pair is O(N x S x log samples)."""
    return bounds(sel, times, None, a, b)[0]


def bounds(sel: Selection, lo_times: np.ndarray, hi_times: np.ndarray | None, a: int = 0,
           b: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`upto` for a window's start and end grids at once (hi is `upto(hi_times)`, or lo again
    when None): the sample slice and each sample's series offset are computed once for both."""
    b = len(sel.labels) if b is None else b
    n = b - a
    grids = [np.asarray(lo_times, np.int64)] + ([] if hi_times is None else [np.asarray(hi_times, np.int64)])
    steps = len(grids[0])
    if n <= 0 or steps == 0:
        z = np.zeros((max(n, 0), steps), np.int64)
        return z, z
    if n * steps <= SMALL or (steps > 1 and any(bool((g[1:] < g[:-1]).any()) for g in grids)):
        # few pairs (instant queries of rules): one search beats a dozen array calls
        keys = sel.keys()
        got = [np.searchsorted(keys, sel.query_keys(g)[a:b], "right") for g in grids]
        return got[0], got[-1]
    starts = sel.starts[a:b + 1]
    s0 = int(starts[0])
    ts = sel.ts[s0:int(starts[-1])]
    # every sample's bin base: series i owns bins i*(S+1) .. i*(S+1)+S (the last: past the grid)
    offs = np.repeat(np.arange(0, n * (steps + 1), steps + 1, dtype=np.int64), np.diff(starts))
    got = []
    for times in grids:
        step = int(times[1] - times[0]) if steps > 1 else 0
        if step > 0 and bool((times[1:] - times[:-1] == step).all()):
            # a regular grid: the first step at or after each sample is a ceiling division
            pos = ts - (int(times[0]) - step + 1)
            pos //= step
            np.clip(pos, 0, steps, out=pos)
        else:
            pos = np.searchsorted(times, ts, "left")  # the first step at or after each sample
        pos += offs
        # one running sum over all bins: series are laid out in order and each owns all its
        # samples' bins, so the sum at (i, s) is starts[i] - starts[a] plus i's samples <= s
        out = np.bincount(pos, minlength=n * (steps + 1))
        np.cumsum(out, out=out)
        out += s0
        got.append(out.reshape(n, steps + 1)[:, :steps])
    return got[0], got[-1]


Value = Vector | Scalar | String | Range


def drop_name(labels: Labels) -> Labels:
    if labels and labels[0][0] == "__name__":  # sorted: first unless a name starts A-Z
        return labels[1:]
    return tuple(p for p in labels if p[0] != "__name__")


def get(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


def with_label(labels: Labels, name: str, value: str) -> Labels:
    rest = [p for p in labels if p[0] != name]
    if value != "":
        rest.append((name, value))
    return tuple(sorted(rest))
