"""Binary operators: arithmetic, comparisons (with `bool`), set operators, vector matching.

Matching is decided once per series pair from label signatures (a Python pass over series, not
steps); values are then combined for all steps with array operations. Duplicate matches are
errors only at steps where both duplicates have a point, as in Prometheus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from heron.metrics.model import Labels
from heron.promql.fetch import QueryError
from heron.promql.values import Scalar, Vector, drop_name, get

if TYPE_CHECKING:
    from heron.promql.engine import _Evaluation

ARITH = {"+", "-", "*", "/", "%", "^", "atan2"}
COMPARE = {"==", "!=", ">", "<", ">=", "<="}
SETS = {"and", "or", "unless"}


def arith(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            return np.power(a, b)
        if op == "atan2":
            return np.arctan2(a, b)
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == ">":
            return a > b
        if op == "<":
            return a < b
        if op == ">=":
            return a >= b
        if op == "<=":
            return a <= b
    raise QueryError(f"unknown operator {op}")


def evaluate(ev: _Evaluation, node: Any, grid: np.ndarray) -> Any:
    op = str(node.op).lower()
    mod = node.modifier
    return_bool = bool(mod and mod.return_bool)
    lhs = ev.eval(node.lhs, grid)
    rhs = ev.eval(node.rhs, grid)
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        val = arith(op, lhs.values, rhs.values)
        if op in COMPARE:
            val = val.astype(np.float64)
        return Scalar(np.asarray(val, np.float64))
    if isinstance(lhs, Vector) and isinstance(rhs, Vector):
        if op in SETS:
            return set_op(op, lhs, rhs, mod)
        return vector_vector(op, lhs, rhs, mod, return_bool)
    if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
        return vector_scalar(op, lhs, rhs.values, False, return_bool)
    if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
        return vector_scalar(op, rhs, lhs.values, True, return_bool)
    raise QueryError("binary expression must contain only scalar and instant vector types", "bad_data")


def vector_scalar(op: str, vec: Vector, scalar: np.ndarray, swap: bool, return_bool: bool) -> Vector:
    a, b = (scalar[None, :], vec.values) if swap else (vec.values, scalar[None, :])
    res = arith(op, a, b)
    labels = vec.labels
    if op in COMPARE:
        keep = np.asarray(res, bool)
        if return_bool:
            return Vector([drop_name(lb) for lb in labels], keep.astype(np.float64), vec.present.copy())
        return Vector(list(labels), vec.values, vec.present & keep).compact()
    return Vector([drop_name(lb) for lb in labels], np.asarray(res, np.float64), vec.present.copy())


def signature(labels: Labels, on: bool, names: frozenset[str]) -> tuple[tuple[str, str], ...]:
    if on:
        return tuple(p for p in labels if p[0] in names)
    return tuple(p for p in labels if p[0] not in names and p[0] != "__name__")


def _matching(mod: Any) -> tuple[bool, frozenset[str]]:
    if mod is None or mod.matching is None:
        return False, frozenset()
    on = str(mod.matching.type).endswith("Include")
    return on, frozenset(mod.matching.labels or [])


def _card(mod: Any) -> str:
    if mod is None:
        return "OneToOne"
    return str(mod.card).split(".")[-1]


def set_op(op: str, lhs: Vector, rhs: Vector, mod: Any) -> Vector:
    on, names = _matching(mod)
    rsig: dict[Any, list[int]] = {}
    for i, lb in enumerate(rhs.labels):
        rsig.setdefault(signature(lb, on, names), []).append(i)
    lsigs = [signature(lb, on, names) for lb in lhs.labels]
    steps = lhs.present.shape[1]

    def rhs_present(sig: Any) -> np.ndarray:
        rows = rsig.get(sig)
        if not rows:
            return np.zeros(steps, bool)
        return np.asarray(rhs.present[rows].any(axis=0))

    if op == "and":
        pres = np.array([lhs.present[i] & rhs_present(s) for i, s in enumerate(lsigs)]).reshape(
            lhs.present.shape)
        return Vector(list(lhs.labels), lhs.values, pres).compact()
    if op == "unless":
        pres = np.array([lhs.present[i] & ~rhs_present(s) for i, s in enumerate(lsigs)]).reshape(
            lhs.present.shape)
        return Vector(list(lhs.labels), lhs.values, pres).compact()
    # or: all of lhs, plus rhs series whose signature has no lhs point at that step
    lsig_present: dict[Any, np.ndarray] = {}
    for i, s in enumerate(lsigs):
        p = lhs.present[i]
        lsig_present[s] = lsig_present[s] | p if s in lsig_present else p.copy()
    rpres = rhs.present.copy()
    for i, lb in enumerate(rhs.labels):
        lp = lsig_present.get(signature(lb, on, names))
        if lp is not None:
            rpres[i] &= ~lp
    out = Vector(list(lhs.labels) + list(rhs.labels), np.concatenate([lhs.values, rhs.values]),
                 np.concatenate([lhs.present, rpres]))
    return out.compact()


def _merge_side(vec: Vector, sigs: list[Any], side: str, card: str) -> dict[Any, int]:
    """Signature -> row for the "one" side; duplicate signatures must never overlap in time."""
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(sigs):
        groups.setdefault(s, []).append(i)
    for s, rows in groups.items():
        if len(rows) > 1 and (vec.present[rows].sum(axis=0) > 1).any():
            if card == "OneToOne" and side == "lhs":
                raise QueryError("many-to-many matching not allowed: matching labels must be unique "
                                 "on one side")
            lbl = "{" + ", ".join(f'{k}="{v}"' for k, v in s) + "}"
            dups = sorted(vec.labels[r] for r in rows)[:2]
            shown = ", ".join("{" + ", ".join(f'{k}="{v}"' for k, v in d) + "}" for d in dups)
            raise QueryError(f"found duplicate series for the match group {lbl} on the {side} hand-side "
                             f"of the operation: [{shown}];many-to-many matching not allowed: matching "
                             "labels must be unique on one side")
    return {s: rows[0] for s, rows in groups.items()}, groups  # type: ignore[return-value]


def vector_vector(op: str, lhs: Vector, rhs: Vector, mod: Any, return_bool: bool) -> Vector:
    on, names = _matching(mod)
    card = _card(mod)
    include = list(mod.group_labels or []) if mod is not None and mod.group_labels else []
    swap = card == "OneToMany"
    many, one = (rhs, lhs) if swap else (lhs, rhs)
    msigs = [signature(lb, on, names) for lb in many.labels]
    osigs = [signature(lb, on, names) for lb in one.labels]
    _, ogroups = _merge_side(one, osigs, "right" if not swap else "left", card)  # type: ignore[misc]
    if card == "OneToOne":
        _merge_side(many, msigs, "lhs", card)
    # "one" side values merged per signature (duplicates never overlap, checked above)
    pairs_m, pairs_o = [], []
    for i, s in enumerate(msigs):
        rows = ogroups.get(s)
        if rows:
            for r in rows:
                pairs_m.append(i)
                pairs_o.append(r)
    steps = lhs.present.shape[1]
    if not pairs_m:
        return Vector.empty(steps)
    mi, oi = np.array(pairs_m), np.array(pairs_o)
    mv, mp = many.values[mi], many.present[mi]
    ov, op_ = one.values[oi], one.present[oi]
    present = mp & op_
    lv, rv = (ov, mv) if swap else (mv, ov)
    res = arith(op, lv, rv)
    is_cmp = op in COMPARE
    if is_cmp:
        keep = np.asarray(res, bool)
        if return_bool:
            values = keep.astype(np.float64)
        else:
            values = lv
            present = present & keep
    else:
        values = np.asarray(res, np.float64)
    drop = (not is_cmp) or return_bool
    labels: list[Labels] = []
    if card == "OneToOne" and not on and not names:
        # the common `a / b`: the lhs labels, minus the name for arithmetic
        labels = [drop_name(many.labels[a]) for a in pairs_m] if drop else [many.labels[a] for a in pairs_m]
    else:
        for a, b in zip(pairs_m, pairs_o, strict=True):
            labels.append(result_labels(many.labels[a], one.labels[b], card, on, names, include, drop))
    out = Vector(labels, values, present).compact()
    if card == "OneToOne":
        check_unique(out, "multiple matches for labels: many-to-one matching must be explicit "
                          "(group_left/group_right)")
    else:
        check_unique(out, "multiple matches for labels: grouping labels must ensure unique matches")
    return merge_duplicates(out)


def result_labels(many: Labels, one: Labels, card: str, on: bool, names: frozenset[str],
                  include: list[str], drop: bool) -> Labels:
    d = dict(many)
    if drop:
        d.pop("__name__", None)
    if card == "OneToOne":
        if on:
            d = {k: v for k, v in d.items() if k in names}
        else:
            d = {k: v for k, v in d.items() if k not in names}
    for name in include:
        v = get(one, name)
        if v:
            d[name] = v
        else:
            d.pop(name, None)
    return tuple(sorted(d.items()))


def check_unique(v: Vector, message: str) -> None:
    """Raise if two series with the same labels have a point at the same step."""
    if len(v.labels) < 2:
        return
    seen: dict[Labels, np.ndarray] = {}
    for i, lb in enumerate(v.labels):
        union = seen.get(lb)
        if union is None:
            seen[lb] = v.present[i]
        elif (union & v.present[i]).any():
            raise QueryError(message)
        else:
            seen[lb] = union | v.present[i]


def merge_duplicates(v: Vector) -> Vector:
    """Merge rows with equal labels (disjoint in time, see check_unique) into one row."""
    pos: dict[Labels, int] = {}
    for lb in v.labels:
        pos.setdefault(lb, len(pos))
    if len(pos) == len(v.labels):
        return v
    out_v = np.full((len(pos), v.values.shape[1]), np.nan)
    out_p = np.zeros((len(pos), v.values.shape[1]), bool)
    for i, lb in enumerate(v.labels):
        k, p = pos[lb], v.present[i]
        out_v[k, p] = v.values[i, p]
        out_p[k] |= p
    return Vector(list(pos), out_v, out_p, ordered=v.ordered)
