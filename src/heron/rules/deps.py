"""Which rules of a group read what an earlier rule of the same group writes.

Prometheus commits each rule's output before the next rule of the group runs, so a recording
rule's result is visible to the rules after it at the same evaluation. Heron batches a group's
writes into one pipeline submit; only a rule some later rule reads must be made visible first.
This module finds those rules from the metric names each expression selects (like Prometheus'
rule dependency map): a selector without a fixed name, or a template calling `query`, may read
anything, so it depends on every earlier rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import promql_parser as pp

from heron.promql.fetch import Matcher
from heron.promql.parse import matcher_groups


def _selectors(node: Any) -> Iterator[Any]:
    if isinstance(node, pp.VectorSelector):
        yield node
        return
    for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            yield from _selectors(child)
    for arg in getattr(node, "args", None) or []:
        yield from _selectors(arg)


def _name_matches(m: Matcher, name: str) -> bool:
    if m.op in ("=", "!="):
        return (m.value == name) == (m.op == "=")
    hit = re.fullmatch(f"(?s:{m.value})", name) is not None
    return hit == (m.op == "=~")


def selector_groups(expr: str) -> list[list[Matcher]] | None:
    """The matcher groups of every selector in `expr`, or None when it does not parse."""
    try:
        root = pp.parse(expr)
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return None
    return [g for vs in _selectors(root) for g in matcher_groups(vs)]


def reads(expr: str, names: Sequence[str]) -> bool:
    """Whether `expr` may select a series named one of `names`."""
    groups = selector_groups(expr)
    if groups is None:
        return True
    for group in groups:
        by_name = [m for m in group if m.name == "__name__"]
        if not by_name or any(all(_name_matches(m, n) for m in by_name) for n in names):
            return True
    return False


def outputs(rule: Any) -> list[str]:
    """Metric names a rule writes: its record name, or ALERTS and ALERTS_FOR_STATE."""
    return [rule.name] if rule.kind == "recording" else ["ALERTS", "ALERTS_FOR_STATE"]


def _queries_in_templates(rule: Any) -> bool:
    texts = list(getattr(rule, "labels", {}).values()) + list(getattr(rule, "annotations", {}).values())
    return rule.kind == "alerting" and any("query" in t and "{{" in t for t in texts)


def read_by_later(rules: Sequence[Any]) -> frozenset[int]:
    """Indices of the rules whose output some later rule of the same group may read."""
    out: set[int] = set()
    for j, later in enumerate(rules):
        if _queries_in_templates(later):
            out.update(range(j))
            continue
        for i in range(j):
            if i not in out and reads(later.expr, outputs(rules[i])):
                out.add(i)
    return frozenset(out)
