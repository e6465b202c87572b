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
                yield a, b, upto(self.sel, self.ends - self.range_ms, a, b), upto(self.sel, self.ends, a, b)

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) sample index bounds, each (N, S): samples lo..hi-1 are in the window."""
        cached = self.extra.get("windows")
        if cached is None:
            cached = self.extra["windows"] = (upto(self.sel, self.ends - self.range_ms),
                                              upto(self.sel, self.ends))
        return cached  # type: ignore[return-value]


def upto(sel: Selection, times: np.ndarray, a: int = 0, b: int | None = None) -> np.ndarray:
    """(N, S) flat index, per series i and time s, of the first sample of i after times[s]
    (a 'right' search of every (series, time) pair); rows a..b-1 only when given.

    Counts instead of searching: each sample finds its step in the short sorted `times` array,
    a bincount per (series, step) and a running sum along the steps give every bound in
    O(samples + N x S), where a search over all samples per pair is O(N x S x log samples)."""
    b = len(sel.labels) if b is None else b
    n, steps = b - a, len(times)
    times = np.asarray(times, np.int64)
    if n <= 0 or steps == 0:
        return np.zeros((max(n, 0), steps), np.int64)
    if n * steps <= SMALL or (steps > 1 and bool((times[1:] < times[:-1]).any())):
        # few pairs (instant queries of rules): one search beats a dozen array calls
        return np.searchsorted(sel.keys(), sel.query_keys(times)[a:b], "right")
    starts = sel.starts[a:b + 1]
    ts = sel.ts[int(starts[0]):int(starts[-1])]
    step = int(times[1] - times[0]) if steps > 1 else 0
    if step > 0 and bool((times[1:] - times[:-1] == step).all()):
        # a regular grid: the first step at or after each sample is a ceiling division
        pos = ts - (int(times[0]) - step + 1)
        pos //= step
        np.clip(pos, 0, steps, out=pos)
    else:
        pos = np.searchsorted(times, ts, "left")  # the first step at or after each sample
    pos += np.repeat(np.arange(0, n * (steps + 1), steps + 1, dtype=np.int64), np.diff(starts))
    hist = np.bincount(pos, minlength=n * (steps + 1)).reshape(n, steps + 1)[:, :steps]
    out = np.cumsum(hist, axis=1)
    out += starts[:-1, None]
    return out


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
