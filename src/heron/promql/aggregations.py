"""Aggregation operators (`sum by (job) (...)` and friends) over all steps at once.

Series are grouped once by their `by`/`without` labels; reductions then run per group on
(group size, steps) blocks. sum/avg add each group's series in series order (as Prometheus
does); min/max/count/group/stddev/stdvar use `reduceat` over the series sorted by group;
topk/bottomk/quantile/count_values/limitk rank within each group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from heron.metrics.model import Labels
from heron.promql.fetch import QueryError
from heron.promql.values import Scalar, String, Vector, with_label
from heron.promql.windows import quantile_sorted

if TYPE_CHECKING:
    from heron.promql.engine import _Evaluation


def group_labels(labels: Labels, by: bool, names: frozenset[str]) -> Labels:
    if by:
        return tuple(p for p in labels if p[0] in names)
    return tuple(p for p in labels if p[0] not in names and p[0] != "__name__")


def evaluate(ev: _Evaluation, node: Any, grid: np.ndarray) -> Vector:
    op = str(node.op).lower()
    mod = node.modifier
    by = True
    names: frozenset[str] = frozenset()
    if mod is not None:
        by = str(mod.type).endswith("By")
        names = frozenset(mod.labels or [])
    param = ev.eval(node.param, grid) if node.param is not None else None
    vec = ev.eval(node.expr, grid)
    if not isinstance(vec, Vector):
        raise QueryError(f"expected instant vector in aggregation {op}", "bad_data")
    steps = len(grid)
    if op in ("topk", "bottomk", "limitk", "limit_ratio") and isinstance(param, Scalar) \
            and np.isnan(param.values).any():
        raise QueryError("Parameter value is NaN")
    if len(vec.labels) == 0:
        return Vector.empty(steps)
    if by:
        keys = [tuple([p for p in lb if p[0] in names]) for lb in vec.labels]
    else:
        dropped = names | {"__name__"}
        keys = [tuple([p for p in lb if p[0] not in dropped]) for lb in vec.labels]
    gmap: dict[Labels, int] = {}
    gid = np.array([gmap.setdefault(k, len(gmap)) for k in keys], dtype=np.int64)
    groups = list(gmap)
    if op in ("topk", "bottomk", "limitk", "limit_ratio"):
        assert isinstance(param, Scalar)
        if np.isnan(param.values).any():
            raise QueryError("Parameter value is NaN")
        return _select_k(op, vec, gid, len(groups), param.values)
    if op == "quantile":
        assert isinstance(param, Scalar)
        from heron.promql.functions import check_quantile

        check_quantile(ev, param.values, ev.query.position("quantile", 0))
        return _quantile(vec, gid, groups, param.values)
    if op == "count_values":
        assert isinstance(param, String)
        return _count_values(vec, gid, groups, param.value)
    return _reduce(op, vec, gid, groups)


def _reduce(op: str, vec: Vector, gid: np.ndarray, groups: list[Labels]) -> Vector:
    n = len(gid)
    order = np.argsort(gid, kind="stable")
    sg = gid[order]
    bounds = np.concatenate([[0], np.nonzero(np.diff(sg))[0] + 1])
    identity = bool((order == np.arange(n)).all())
    dense = bool(vec.present.all())
    if op in ("sum", "avg"):
        return _sum_avg(op, vec, gid, groups, order, bounds, identity, dense)
    # one gathered copy per matrix, then masked in place (reduceat wants groups contiguous)
    V = (vec.values if dense else vec.values.copy()) if identity else vec.values[order]
    P = vec.present if dense else (vec.present if identity else vec.present[order])
    if dense:
        sizes = np.diff(np.append(bounds, n)).astype(np.float64)
        cnt = np.broadcast_to(sizes[:, None], (len(bounds), V.shape[1]))
    else:
        cnt = np.add.reduceat(P, bounds, axis=0, dtype=np.int64).astype(np.float64)
    present = cnt > 0
    with np.errstate(all="ignore"):
        if op in ("sum", "avg"):
            if not dense:
                np.copyto(V, 0.0, where=~P)
            total = np.add.reduceat(V, bounds, axis=0)
            out = total / cnt if op == "avg" else total
            # Cancellation or overflow: redo those groups in Prometheus' order with Kahan sums.
            redo = ~np.isfinite(out)
            if not (V.min(initial=0.0) >= 0):  # mixed signs (or NaN): sums may cancel
                mag = np.add.reduceat(np.abs(V), bounds, axis=0)
                redo |= mag > 1e8 * np.abs(total)
            if redo.any():
                if not dense:
                    V = vec.values.copy() if identity else vec.values[order]
                out = _sequential(op, V, np.broadcast_to(P, V.shape), bounds, out, redo)
        elif op == "count":
            out = np.array(cnt)
        elif op == "group":
            out = np.ones(cnt.shape)
        elif op in ("min", "max"):
            if not dense:
                np.copyto(V, np.nan, where=~P)
            out = (np.fmin if op == "min" else np.fmax).reduceat(V, bounds, axis=0)
        elif op in ("stddev", "stdvar"):
            PV = np.broadcast_to(P, V.shape)
            mean = np.add.reduceat(np.where(PV, V, 0.0), bounds, axis=0) / cnt
            d = np.where(PV, V - mean[sg], 0.0)
            var = np.add.reduceat(d * d, bounds, axis=0) / cnt
            # all members equal: exactly 0, as Prometheus' Welford update gives
            same = np.fmin.reduceat(np.where(PV, V, np.nan), bounds, axis=0) == \
                np.fmax.reduceat(np.where(PV, V, np.nan), bounds, axis=0)
            var = np.where(same & np.isfinite(mean), 0.0, var)
            out = np.sqrt(var) if op == "stddev" else var
        else:
            raise QueryError(f"unsupported aggregation {op}", "bad_data")
    labels = [groups[g] for g in sg[bounds]]
    return Vector(labels, out, np.array(present)).compact()


ROW_LOOP_MIN_STEPS = 16  # from this many steps a Python loop of row adds beats np.add.at


def row_sums(V: np.ndarray, gid: np.ndarray, ngroups: int) -> np.ndarray:
    """(ngroups, S): each group's rows of `V` added one after another in row order, as Prometheus
    adds a group's series (the first member's row taken as is). `np.add.at` and the loop give the
    same bits; the loop is faster for many steps, `add.at` for few."""
    _, first = np.unique(gid, return_index=True)  # gid holds every group 0..ngroups-1
    out = V[first]
    rest = np.ones(len(gid), bool)
    rest[first] = False
    if V.shape[1] < ROW_LOOP_MIN_STEPS:
        np.add.at(out, gid[rest], V[rest])
        return out
    g_of = gid.tolist()
    for i in np.flatnonzero(rest).tolist():
        row = out[g_of[i]]
        row += V[i]
    return out


def _sum_avg(op: str, vec: Vector, gid: np.ndarray, groups: list[Labels], order: np.ndarray,
             bounds: np.ndarray, identity: bool, dense: bool) -> Vector:
    """sum/avg without regrouping the matrix: rows are added in series order (row_sums)."""
    ngroups = len(bounds)
    V = vec.values if dense else np.where(vec.present, vec.values, 0.0)
    # groups are numbered in first-appearance order, so sorted group k is group k
    if dense:
        sizes = np.bincount(gid, minlength=ngroups).astype(np.float64)
        cnt = np.broadcast_to(sizes[:, None], (ngroups, V.shape[1]))
    else:
        Po = vec.present if identity else vec.present[order]
        cnt = np.add.reduceat(Po, bounds, axis=0, dtype=np.int64).astype(np.float64)
    present = cnt > 0
    with np.errstate(all="ignore"):
        total = row_sums(V, gid, ngroups)
        out = total / cnt if op == "avg" else total
        # Cancellation or overflow: redo those groups in Prometheus' order with Kahan sums.
        redo = ~np.isfinite(out)
        if not (V.min(initial=0.0) >= 0):  # mixed signs (or NaN): sums may cancel
            mag = row_sums(np.abs(V), gid, ngroups)
            redo |= mag > 1e8 * np.abs(total)
        if redo.any():
            Vo = vec.values if identity else vec.values[order]
            Po = vec.present if identity else vec.present[order]
            out = _sequential(op, Vo, Po, bounds, out, redo)
    labels = [groups[g] for g in range(ngroups)]
    return Vector(labels, out, np.array(present)).compact()


def _sequential(op: str, V: np.ndarray, P: np.ndarray, bounds: np.ndarray, out: np.ndarray,
                redo: np.ndarray) -> np.ndarray:
    """sum/avg of the groups in `redo` member by member (Kahan; avg switches to incremental)."""
    from heron.promql.windows import kahan, seq_avg

    out = out.copy()
    ends = np.append(bounds[1:], len(V))
    for g in np.nonzero(redo.any(axis=1))[0]:
        cols = np.nonzero(redo[g])[0]
        block_v = V[bounds[g]:ends[g]][:, cols].T  # (steps, members) in input order
        block_p = P[bounds[g]:ends[g]][:, cols].T
        out[g, cols] = kahan(block_v, block_p) if op == "sum" else seq_avg(block_v, block_p)
    return out


def _ranks(V: np.ndarray, P: np.ndarray, descending: bool) -> np.ndarray:
    """Rank of each row per column: present values by value (NaN last), absent after."""
    prim = np.where(P, np.where(np.isnan(V), 1, 0), 2)
    sec = np.where(P & ~np.isnan(V), -V if descending else V, 0.0)
    order = np.lexsort((sec, prim), axis=0)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(V.shape[0])[:, None].repeat(V.shape[1], 1), axis=0)
    return ranks


def _select_k(op: str, vec: Vector, gid: np.ndarray, ngroups: int, k: np.ndarray) -> Vector:
    present = np.zeros_like(vec.present)
    rank_all = np.zeros(vec.present.shape, np.int64)
    for g in range(ngroups):
        rows = np.nonzero(gid == g)[0]
        V, P = vec.values[rows], vec.present[rows]
        if op == "limitk":
            ranks = np.cumsum(P, axis=0) - 1
        elif op == "limit_ratio":
            raise QueryError("limit_ratio is not supported", "bad_data")
        else:
            ranks = _ranks(V, P, descending=(op == "topk"))
        kk = np.where(np.isnan(k), 0, np.clip(k, -1, 1e12)).astype(np.int64)
        keep = P & (ranks < kk[None, :])
        if op in ("topk", "bottomk"):
            _heap_ties(op, V, P, ranks, kk, keep)
        present[rows] = keep
        rank_all[rows] = ranks
    out = Vector(list(vec.labels), vec.values, present)
    if vec.values.shape[1] == 1 and op in ("topk", "bottomk"):
        # Instant results come back ordered: by group, then by rank (as Prometheus' heap).
        idx = np.nonzero(present[:, 0])[0]
        idx = idx[np.lexsort((rank_all[idx, 0], gid[idx]))]
        out = out.take(idx)
        out.ordered = True
        return out
    return out.compact()


def _heap_ties(op: str, V: np.ndarray, P: np.ndarray, ranks: np.ndarray, k: np.ndarray,
               keep: np.ndarray) -> None:
    """Where equal values straddle the k-th place, pick the series the way Prometheus' heap does
    (Go's container/heap over the input order), so ties select the same series."""
    n = V.shape[0]
    for s in range(V.shape[1]):
        kk = int(k[s])
        if kk <= 0 or kk >= int(P[:, s].sum()):
            continue
        order = np.argsort(ranks[:, s])
        a, b = V[order[kk - 1], s], V[order[kk], s]
        if not (a == b or (np.isnan(a) and np.isnan(b))):
            continue
        chosen = _go_heap_select(op, [i for i in range(n) if P[i, s]], V[:, s], kk)
        keep[:, s] = False
        keep[chosen, s] = True


def _go_heap_select(op: str, members: list[int], vals: np.ndarray, k: int) -> list[int]:
    def less(x: int, y: int) -> bool:
        vx, vy = vals[x], vals[y]
        if np.isnan(vx):
            return True
        return bool(vx < vy) if op == "topk" else bool(vx > vy)

    heap: list[int] = []

    def up(j: int) -> None:
        while True:
            i = (j - 1) // 2 if j > 0 else 0
            if i == j or not less(heap[j], heap[i]):
                break
            heap[i], heap[j] = heap[j], heap[i]
            j = i

    def down(i0: int) -> bool:
        i, n = i0, len(heap)
        while True:
            j1 = 2 * i + 1
            if j1 >= n:
                break
            j = j1
            if j1 + 1 < n and less(heap[j1 + 1], heap[j1]):
                j = j1 + 1
            if not less(heap[j], heap[i]):
                break
            heap[i], heap[j] = heap[j], heap[i]
            i = j
        return i > i0

    for m in members:
        if len(heap) < k:
            heap.append(m)
            up(len(heap) - 1)
            continue
        top, v = vals[heap[0]], vals[m]
        better = (top < v) if op == "topk" else (top > v)
        if better or (np.isnan(top) and not np.isnan(v)):
            heap[0] = m
            if k > 1 and not down(0):
                up(0)
    return heap


def _quantile(vec: Vector, gid: np.ndarray, groups: list[Labels], q: np.ndarray) -> Vector:
    steps = vec.values.shape[1]
    out = np.full((len(groups), steps), np.nan)
    pres = np.zeros((len(groups), steps), bool)
    for g in range(len(groups)):
        rows = np.nonzero(gid == g)[0]
        V, P = vec.values[rows].T, vec.present[rows].T  # (steps, members)
        prim = np.where(P, np.where(np.isnan(V), 0, 1), 2)
        order = np.lexsort((np.where(P & ~np.isnan(V), V, 0.0), prim), axis=1)
        srt = np.take_along_axis(V, order, axis=1)
        n = P.sum(axis=1)
        for s in range(steps) if len(np.unique(q)) > 1 else [None]:
            if s is None:
                out[g] = quantile_sorted(float(q[0]), srt, n)
            else:
                out[g, s] = quantile_sorted(float(q[s]), srt[s:s + 1], n[s:s + 1])[0]
        pres[g] = n > 0
    return Vector(groups, out, pres).compact()


def _count_values(vec: Vector, gid: np.ndarray, groups: list[Labels], label: str) -> Vector:
    from heron.promql.result import format_value

    labels: list[Labels] = []
    rows_v: list[np.ndarray] = []
    steps = vec.values.shape[1]
    for g, glabels in enumerate(groups):
        rows = np.nonzero(gid == g)[0]
        V, P = vec.values[rows], vec.present[rows]
        texts = np.array([[format_value(x) for x in row] for row in V], dtype=object).reshape(V.shape)
        for text in dict.fromkeys(texts[P].tolist()):
            c = ((texts == text) & P).sum(axis=0).astype(np.float64)
            labels.append(with_label(glabels, label, text))
            rows_v.append(c)
    if not labels:
        return Vector.empty(steps)
    vals = np.array(rows_v)
    return Vector(labels, vals, vals > 0).compact()
