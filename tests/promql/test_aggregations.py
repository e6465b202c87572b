"""sum/avg add a group's series in series order, as Prometheus does (not numpy's pairwise order)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from heron.promql import Engine, aggregations
from heron.promql.aggregations import row_sums


def _sequential(V: np.ndarray, gid: np.ndarray, ngroups: int) -> np.ndarray:
    out = [[None] * V.shape[1] for _ in range(ngroups)]
    for i, g in enumerate(gid.tolist()):
        for s in range(V.shape[1]):
            x = float(V[i, s])
            out[g][s] = x if out[g][s] is None else out[g][s] + x
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("steps", [1, 5, 40])  # np.add.at below ROW_LOOP_MIN_STEPS, the row loop above
def test_row_sums_are_sequential_per_group(steps: int) -> None:
    rng = np.random.default_rng(7)
    n, groups = 300, 7
    V = rng.normal(size=(n, steps)) * 10.0 ** rng.integers(-8, 9, size=(n, 1))  # magnitudes that round
    gid = np.concatenate([np.arange(groups), rng.integers(0, groups, n - groups)])
    rng.shuffle(gid)
    got = row_sums(V, gid, groups)
    assert got.view(np.uint64).tolist() == _sequential(V, gid, groups).view(np.uint64).tolist()
    order = np.argsort(gid, kind="stable")
    bounds = np.flatnonzero(np.diff(np.concatenate([[-1], gid[order]])))
    assert not np.array_equal(got, np.add.reduceat(V[order], bounds, axis=0))  # pairwise differs here


def test_sum_and_avg_by_in_series_order() -> None:
    """Through the engine: `sum by` equals adding the series in label order, last bit included."""
    from heron.metrics.head import Head
    from heron.metrics.model import labels_from
    from tests.metrics.test_head import _EmptyStorage

    now = int(time.time()) * 1000 // 60_000 * 60_000
    head = Head(3_600_000)
    head.load(_EmptyStorage())
    rng = np.random.default_rng(3)
    n, pts = 90, 20
    series = [labels_from({"__name__": "g", "job": f"j{i % 3}", "i": f"{i:02d}"}) for i in range(n)]
    ts = np.tile(now - 600_000 + np.arange(pts, dtype=np.int64) * 30_000, n)
    vals = rng.normal(size=n * pts) * 10.0 ** rng.integers(-8, 9, n * pts)  # magnitudes that round
    head.append(series, [pts] * n, ts, vals)
    eng = Engine(_EmptyStorage(), head=head)  # type: ignore[arg-type]
    t = (now - 30_000) / 1000
    got = {s.labels["job"]: s.value for s in eng.instant("sum by (job) (g)", t).vector}
    got_avg = {s.labels["job"]: s.value for s in eng.instant("avg by (job) (g)", t).vector}
    at = pts - 1  # the sample at t (the last one)
    for j in range(3):
        members = [float(vals[i * pts + at]) for i in range(n) if i % 3 == j]  # label order: i = 00, 01, ...
        want = members[0]
        for x in members[1:]:
            want += x
        assert got[f"j{j}"] == want
        assert got_avg[f"j{j}"] == want / len(members)
    head.close()
    assert aggregations.ROW_LOOP_MIN_STEPS > 1
